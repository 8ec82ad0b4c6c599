using System.Text.Json;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// The weights of a Hugging Face model folder: a single <c>model.safetensors</c>, or shards listed by
/// <c>model.safetensors.index.json</c> (<c>{"metadata": {...}, "weight_map": {tensor: shard}}</c>).
/// When both exist the single file wins, as in transformers' <c>from_pretrained</c>. Open checks that
/// every shard exists and holds every tensor the map assigns to it; tensors in a shard but not in the
/// map are ignored. Disposing unmaps every shard.
/// A metadata entry whose key is not a stored tensor and whose value is one names a shared tensor stored once
/// (<c>safetensors.torch.save_model</c> writes <c>{"model.embed_tokens.weight": "lm_head.weight"}</c> when it drops
/// a tied duplicate): the key reads as the stored tensor (see <see cref="Aliases"/>).
/// </summary>
public sealed class SafeTensorsFolder : IDisposable
{
    /// <summary>File name of an unsharded checkpoint.</summary>
    public const string SingleFileName = "model.safetensors";

    /// <summary>File name of the shard index.</summary>
    public const string IndexFileName = "model.safetensors.index.json";

    private readonly List<SafeTensorsFile> files;
    private readonly Dictionary<string, SafeTensorsFile> byTensor;
    private readonly Dictionary<string, string> aliases;

    private SafeTensorsFolder(string directory, List<SafeTensorsFile> files, Dictionary<string, SafeTensorsFile> byTensor, IReadOnlyDictionary<string, string> metadata)
    {
        Directory = directory;
        this.files = files;
        this.byTensor = byTensor;
        Metadata = metadata;
        Names = byTensor.Keys.Order(StringComparer.Ordinal).ToArray();
        aliases = metadata
            .Where(m => !byTensor.ContainsKey(m.Key) && byTensor.ContainsKey(m.Value))
            .ToDictionary(static m => m.Key, static m => m.Value, StringComparer.Ordinal);
    }

    /// <summary>Full path of the folder.</summary>
    public string Directory { get; }

    /// <summary>Every stored tensor name, sorted ordinally (aliases are not listed).</summary>
    public IReadOnlyList<string> Names { get; }

    /// <summary>Shared tensors named in the metadata: alias → the stored tensor it reads as.</summary>
    public IReadOnlyDictionary<string, string> Aliases => aliases;

    /// <summary>The opened safetensors files (one, or the shards in index order of first use).</summary>
    public IReadOnlyList<SafeTensorsFile> Files => files;

    /// <summary>
    /// The single file's <c>__metadata__</c>, or the index's <c>metadata</c> with non-string values
    /// (e.g. <c>total_size</c>) as their JSON text.
    /// </summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Opens the weights of the model folder <paramref name="directory"/>.</summary>
    /// <exception cref="DirectoryNotFoundException">No such folder.</exception>
    /// <exception cref="FileNotFoundException">Neither model.safetensors nor model.safetensors.index.json is there.</exception>
    /// <exception cref="InvalidDataException">A malformed index or shard, a missing shard, or a tensor missing from its shard.</exception>
    public static SafeTensorsFolder Open(string directory)
    {
        string full = Path.GetFullPath(directory);
        if (!System.IO.Directory.Exists(full))
        {
            throw new DirectoryNotFoundException($"model folder {full} does not exist");
        }

        string single = Path.Combine(full, SingleFileName);
        if (File.Exists(single))
        {
            var file = SafeTensorsFile.Open(single);
            var map = file.Tensors.Keys.ToDictionary(k => k, _ => file, StringComparer.Ordinal);
            return new SafeTensorsFolder(full, [file], map, file.Metadata);
        }

        string index = Path.Combine(full, IndexFileName);
        if (File.Exists(index))
        {
            return OpenSharded(full, index);
        }

        throw new FileNotFoundException($"model folder {full} has neither {SingleFileName} nor {IndexFileName} — is this a Hugging Face safetensors checkpoint?", single);
    }

    /// <summary>Whether the folder holds <paramref name="name"/>, stored or as an alias.</summary>
    public bool Contains(string name) => byTensor.ContainsKey(name) || aliases.ContainsKey(name);

    /// <summary>The stored name <paramref name="name"/> reads as: itself, or the tensor an alias names.</summary>
    public string Resolve(string name) => aliases.TryGetValue(name, out string? stored) ? stored : name;

    /// <summary>The header entry of <paramref name="name"/> (of the stored tensor for an alias).</summary>
    /// <exception cref="InvalidDataException">No such tensor.</exception>
    public SafeTensorInfo Info(string name) => FileOf(name).Info(Resolve(name));

    /// <summary>The file that holds <paramref name="name"/> (or the tensor it is an alias of).</summary>
    /// <exception cref="InvalidDataException">No such tensor.</exception>
    public SafeTensorsFile FileOf(string name)
    {
        if (byTensor.TryGetValue(Resolve(name), out var file))
        {
            return file;
        }

        throw new InvalidDataException($"tensor '{name}' missing in {Directory} ({byTensor.Count} tensors{SimilarName(name)}) — is this checkpoint for another architecture?");
    }

    /// <inheritdoc cref="SafeTensorsFile.Read(string, DType)"/>
    public Tensor Read(string name, DType target) => FileOf(name).Read(Resolve(name), target);

    /// <inheritdoc cref="SafeTensorsFile.Read(string, DType, ReadOnlySpan{int})"/>
    public Tensor Read(string name, DType target, ReadOnlySpan<int> expectedShape) => FileOf(name).Read(Resolve(name), target, expectedShape);

    /// <inheritdoc cref="SafeTensorsFile.ReadFloats(string)"/>
    public float[] ReadFloats(string name) => FileOf(name).ReadFloats(Resolve(name));

    /// <inheritdoc cref="SafeTensorsFile.ReadInt64(string)"/>
    public long[] ReadInt64(string name) => FileOf(name).ReadInt64(Resolve(name));

    /// <summary>Unmaps every file. Idempotent.</summary>
    public void Dispose()
    {
        foreach (var file in files)
        {
            file.Dispose();
        }
    }

    private static SafeTensorsFolder OpenSharded(string directory, string indexPath)
    {
        var (weightMap, metadata) = ReadIndex(indexPath);
        var shards = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
        var files = new List<SafeTensorsFile>();
        try
        {
            var byTensor = new Dictionary<string, SafeTensorsFile>(StringComparer.Ordinal);
            foreach (var (tensor, shardName) in weightMap)
            {
                if (!shards.TryGetValue(shardName, out var shard))
                {
                    string shardPath = Path.Combine(directory, shardName);
                    if (!File.Exists(shardPath))
                    {
                        throw new InvalidDataException($"{indexPath}: shard '{shardName}' (holding tensor '{tensor}') does not exist in {directory}");
                    }

                    shard = SafeTensorsFile.Open(shardPath);
                    shards.Add(shardName, shard);
                    files.Add(shard);
                }

                if (!shard.Contains(tensor))
                {
                    throw new InvalidDataException($"{indexPath}: tensor '{tensor}' is mapped to {shard.Path}, which does not hold it");
                }

                byTensor.Add(tensor, shard);
            }

            return new SafeTensorsFolder(directory, files, byTensor, metadata);
        }
        catch
        {
            foreach (var file in files)
            {
                file.Dispose();
            }

            throw;
        }
    }

    private static (List<KeyValuePair<string, string>> WeightMap, Dictionary<string, string> Metadata) ReadIndex(string indexPath)
    {
        using var doc = StrictJson.Parse(File.ReadAllBytes(indexPath), indexPath, "shard index");
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{indexPath}: index is a JSON {root.ValueKind}; expected an object with 'weight_map'");
        }

        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        if (root.TryGetProperty("metadata", out var meta) && meta.ValueKind != JsonValueKind.Null)
        {
            if (meta.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{indexPath}: 'metadata' is a JSON {meta.ValueKind}; expected an object");
            }

            foreach (var item in meta.EnumerateObject())
            {
                metadata[item.Name] = item.Value.ValueKind == JsonValueKind.String ? item.Value.GetString()! : item.Value.GetRawText();
            }
        }

        if (!root.TryGetProperty("weight_map", out var map) || map.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{indexPath}: 'weight_map' is missing or not an object; expected {{\"tensor name\": \"shard file\"}}");
        }

        var weightMap = new List<KeyValuePair<string, string>>();
        foreach (var item in map.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new InvalidDataException($"{indexPath}: weight_map entry for tensor '{item.Name}' is a JSON {item.Value.ValueKind}; expected a shard file name");
            }

            string shard = item.Value.GetString()!;
            if (!IsPlainFileName(shard))
            {
                throw new InvalidDataException($"{indexPath}: weight_map entry for tensor '{item.Name}' is '{shard}'; expected a file name inside the model folder");
            }

            weightMap.Add(new(item.Name, shard));
        }

        return (weightMap, metadata);
    }

    // Shards live next to the index; a path could reach outside the model folder.
    private static bool IsPlainFileName(string name) =>
        name.Length > 0 && name != "." && name != ".." && name.IndexOfAny(['/', '\\', '\0']) < 0 && Path.GetFileName(name) == name;

    private string SimilarName(string name)
    {
        // A common mismatch is the "model." prefix (base model vs CausalLM checkpoint).
        string alternative = name.StartsWith("model.", StringComparison.Ordinal) ? name["model.".Length..] : "model." + name;
        return byTensor.ContainsKey(alternative) ? $"; it has '{alternative}'" : string.Empty;
    }
}
