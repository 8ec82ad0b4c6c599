using System.Security.Cryptography;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>Temporary folders and rewritten copies of the reference adapters for the PEFT tests.</summary>
internal sealed class PeftTestFiles : IDisposable
{
    public PeftTestFiles() => Root = Directory.CreateTempSubdirectory("peft-test-").FullName;

    public string Root { get; }

    public static string Reference(string name) => FixturePaths.Case(name);

    public string Path(string name) => System.IO.Path.Combine(Root, name);

    /// <summary>
    /// Copies reference adapter <paramref name="source"/> to a new folder; <paramref name="rename"/> maps each
    /// key to its new name (null drops it) and <paramref name="entry"/> may replace a tensor's entry.
    /// </summary>
    public string Rewrite(string source, string name, Func<string, string?>? rename = null, Func<string, float[], int[], SafeTensorEntry?>? entry = null, Func<string, string>? config = null)
    {
        string dir = Path(name);
        Directory.CreateDirectory(dir);
        string src = Reference(source);
        string json = File.ReadAllText(System.IO.Path.Combine(src, "adapter_config.json"));
        File.WriteAllText(System.IO.Path.Combine(dir, "adapter_config.json"), config is null ? json : config(json));
        using var file = SafeTensorsFile.Open(System.IO.Path.Combine(src, "adapter_model.safetensors"));
        var entries = new List<SafeTensorEntry>();
        foreach (var (key, info) in file.Tensors)
        {
            string? newKey = rename is null ? key : rename(key);
            if (newKey is null)
            {
                continue;
            }

            var values = file.ReadFloats(key);
            entries.Add(entry?.Invoke(newKey, values, info.Shape) ?? SafeTensorEntry.FromFloats(newKey, info.Shape, values));
        }

        SafeTensorsWriter.Write(System.IO.Path.Combine(dir, "adapter_model.safetensors"), entries);
        return dir;
    }

    /// <summary>Hash of every parameter's bytes, the adapter names and the active adapter per Linear: what "model unchanged" means.</summary>
    public static unsafe string Fingerprint(LlamaForCausalLM model)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var p in model.Parameters())
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes(p.Name + (p.Trainable ? "+" : "-")));
            hash.AppendData(new ReadOnlySpan<byte>((void*)p.Value.Data, checked((int)p.Value.ByteLength)));
        }

        foreach (var l in model.Linears())
        {
            hash.AppendData(System.Text.Encoding.UTF8.GetBytes($"{l.Name}:{l.ActiveAdapter}:{string.Join(",", l.Adapters.Keys)}"));
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    public void Dispose()
    {
        try
        {
            Directory.Delete(Root, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
