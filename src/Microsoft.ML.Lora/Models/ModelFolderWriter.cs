using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// Writes a model as a complete Hugging Face folder: config.json, safetensors (sharded past 5 GB),
/// and the tokenizer files of the folder it was loaded from. The folder appears whole or not at all:
/// everything is written into a temporary sibling that is renamed into place at the end.
/// </summary>
public static class ModelFolderWriter
{
    /// <summary>Files copied from the source model folder when present.</summary>
    public static readonly string[] TokenizerFiles =
    [
        "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.model",
        "vocab.json", "merges.txt", "added_tokens.json", "generation_config.json", "chat_template.jinja",
    ];

    /// <summary>
    /// Saves the base weights (adapters are not included: merge them first) in <paramref name="dtype"/>
    /// (default: BF16 when any weight is BF16, else F32; NF4 weights are dequantized). A tied model's matrix is
    /// written under the name, and with the metadata alias, of <see cref="LlamaForCausalLM.TiedLayout"/>.
    /// <paramref name="directory"/> must not exist or be empty.
    /// </summary>
    public static void Save(LlamaForCausalLM model, string directory, DType? dtype = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default)
    {
        var adapterParameters = model.Linears().SelectMany(static l => l.Adapters.Values).SelectMany(static a => a.Parameters()).ToHashSet();
        var parameters = model.Parameters().Where(p => !adapterParameters.Contains(p)).ToList();
        var saveType = dtype ?? (parameters.Any(static p => p.Value.DType == DType.BF16) ? DType.BF16 : DType.F32);
        AtomicFolder.Write(directory, temp =>
        {
            var tied = model.TiedLayout;
            var entries = parameters.Select(p => Entry(p, ReferenceEquals(p, model.EmbedTokens) && tied is not null ? tied.StoredName : p.Name, saveType));
            SafeTensorsWriter.WriteModel(temp, entries, metadata: tied?.Metadata, progress: progress, cancellationToken: cancellationToken);
            var config = JsonNode.Parse(model.Config.ToJson())!.AsObject();
            config["torch_dtype"] = saveType == DType.BF16 ? "bfloat16" : "float32";
            File.WriteAllText(Path.Combine(temp, "config.json"), config.ToJsonString(new() { WriteIndented = true }) + "\n");
            CopyTokenizerFiles(model, temp);
        }, cancellationToken);
    }

    /// <summary>Copies <see cref="TokenizerFiles"/> that exist in the model's source folder into <paramref name="directory"/>.</summary>
    public static void CopyTokenizerFiles(LlamaForCausalLM model, string directory)
    {
        if (model.SourceDirectory is { } source)
        {
            foreach (string name in TokenizerFiles.Where(n => File.Exists(Path.Combine(source, n))))
            {
                File.Copy(Path.Combine(source, name), Path.Combine(directory, name));
            }
        }
    }

    private static SafeTensorEntry Entry(Parameter p, string name, DType saveType)
    {
        bool matrix = p.Value.Rank == 2;
        var type = matrix ? saveType : DType.F32;
        return type == p.Value.DType
            ? SafeTensorEntry.FromTensor(name, p.Value)
            : SafeTensorEntry.Deferred(name, type, p.Value.Shape.ToArray(), () => p.Value.To(type));
    }
}
