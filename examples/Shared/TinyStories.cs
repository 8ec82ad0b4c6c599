using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Examples;

/// <summary>
/// The real pretrained TinyStories-656K model the repository ships in <c>models/tinystories-656k</c>
/// (Apache-2.0; see its PROVENANCE.md): a 2-layer Llama, hidden 128, vocabulary 2048, trained on children's
/// stories. Its tied embedding matrix is stored only as <c>lm_head.weight</c>, as transformers saved it.
/// </summary>
internal static class TinyStories
{
    private const string Folder = "models/tinystories-656k";
    private static readonly Lazy<string> Loadable = new(MakeLoadable);

    /// <summary>The repository's model folder, found from the working folder or the program's folder upwards.</summary>
    /// <exception cref="DirectoryNotFoundException">Neither is inside the repository.</exception>
    public static string RepositoryPath
    {
        get
        {
            foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            {
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                {
                    string candidate = System.IO.Path.Combine(dir.FullName, Folder);
                    if (File.Exists(System.IO.Path.Combine(candidate, "config.json")))
                    {
                        return candidate;
                    }
                }
            }

            throw new DirectoryNotFoundException($"{Folder} not found above '{Environment.CurrentDirectory}' or '{AppContext.BaseDirectory}'; run from the repository");
        }
    }

    /// <summary>
    /// A folder the engine loads with the model's upstream weights: the repository's folder itself once the
    /// loader reads tied checkpoints stored as <c>lm_head.weight</c> only; until then (issue 13) a copy in the
    /// temp folder whose safetensors names the same matrix <c>model.embed_tokens.weight</c> too, made once per process.
    /// </summary>
    public static string Path => Loadable.Value;

    private static string MakeLoadable()
    {
        string source = RepositoryPath;
        try
        {
            using var probe = LlamaForCausalLM.Load(source);
            return source;
        }
        catch (Exception e) when (e.Message.Contains("model.embed_tokens.weight", StringComparison.Ordinal))
        {
        }

        string target = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"lora-tinystories-656k-{Environment.ProcessId}-{Guid.NewGuid():N}");
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source).Where(static f => !f.EndsWith(".safetensors", StringComparison.Ordinal)))
        {
            File.Copy(file, System.IO.Path.Combine(target, System.IO.Path.GetFileName(file)));
        }

        using (var weights = SafeTensorsFile.Open(System.IO.Path.Combine(source, "model.safetensors")))
        {
            var entries = weights.Tensors.Values.Select(t => SafeTensorEntry.FromBytes(t.Name, t.DType, t.Shape, weights.GetBytes(t.Name).ToArray())).ToList();
            var head = weights.Tensors["lm_head.weight"];
            entries.Add(SafeTensorEntry.FromBytes("model.embed_tokens.weight", head.DType, head.Shape, weights.GetBytes(head.Name).ToArray()));
            SafeTensorsWriter.Write(System.IO.Path.Combine(target, "model.safetensors"), entries);
        }

        AppDomain.CurrentDomain.ProcessExit += (_, _) => TryDelete(target);
        return target;
    }

    private static void TryDelete(string folder)
    {
        try
        {
            Directory.Delete(folder, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
