using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Onnx;

/// <summary>
/// Exports a causal LM as a folder that ONNX Runtime GenAI runs (<c>new Model(dir)</c>, <c>Tokenizer</c>,
/// <c>Generator</c>): <c>model.onnx</c> with the KV cache (<see cref="OnnxExportOptions.KvCache"/>; F16, int4,
/// external data and adapters-as-inputs as the options say), <see cref="ConfigFileName"/> and the tokenizer files
/// of the folder the model was loaded from. The folder appears whole or not at all.
/// </summary>
public static class GenAiFolderExporter
{
    /// <summary>The GenAI configuration file.</summary>
    public const string ConfigFileName = "genai_config.json";

    /// <summary>The decoder's file name in the folder.</summary>
    public const string ModelFileName = "model.onnx";

    /// <summary>
    /// Writes the folder <paramref name="directory"/> (must not exist or be empty). The model must have been loaded
    /// from a Hugging Face folder with a <c>tokenizer.json</c>: GenAI tokenizes with it. Token ids and search
    /// defaults come from that folder's <c>generation_config.json</c>, then its <c>config.json</c>, then the tokenizer.
    /// </summary>
    public static string Export(LlamaForCausalLM model, string directory, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options = (options ?? new OnnxExportOptions()) with { KvCache = true };
        string source = model.SourceDirectory
            ?? throw new ArgumentException("a GenAI folder needs the model's tokenizer: load the model from a Hugging Face folder (LlamaForCausalLM.Load)");
        if (!File.Exists(Path.Combine(source, "tokenizer.json")))
        {
            throw new FileNotFoundException($"{Path.Combine(source, "tokenizer.json")}: a GenAI folder needs the model's tokenizer.json (GenAI tokenizes with it)");
        }

        if (model.Config.NumLabels is int labels)
        {
            throw new ArgumentException($"a GenAI folder holds a model that generates text; this model is a sequence classifier ({model.Config.Architecture}, {labels} labels)");
        }

        int maxPositions = options.MaxPositions ?? Math.Min(model.Config.MaxPositionEmbeddings, 8192);
        var genai = Config(model.Config, source, maxPositions, options.GroupQueryAttention);
        return AtomicFolder.Write(directory, temp =>
        {
            LlamaOnnxExporter.Export(model, Path.Combine(temp, ModelFileName), options with { MaxPositions = maxPositions });
            File.WriteAllText(Path.Combine(temp, ConfigFileName), genai.ToJsonString(new JsonSerializerOptions { WriteIndented = true }) + "\n");
            ModelFolderWriter.CopyTokenizerFiles(model, temp);
        });
    }

    /// <summary>The <see cref="ConfigFileName"/> content for a KV-cache export of <paramref name="config"/>.</summary>
    internal static JsonObject Config(LlamaConfig config, string sourceFolder, int contextLength, bool sharedBuffer)
    {
        JsonObject? generation = ReadObject(Path.Combine(sourceFolder, "generation_config.json"));
        JsonObject? hf = ReadObject(Path.Combine(sourceFolder, "config.json"));
        JsonNode? Pick(string key) => generation?[key] ?? hf?[key];

        int[] eos = TokenIds(Pick("eos_token_id"), sourceFolder, "eos_token_id", config.VocabSize);
        int[] bos = TokenIds(Pick("bos_token_id"), sourceFolder, "bos_token_id", config.VocabSize);
        int[] pad = TokenIds(Pick("pad_token_id"), sourceFolder, "pad_token_id", config.VocabSize);
        if (eos.Length == 0 || bos.Length == 0)
        {
            // Last, the tokenizer's own special tokens (tokenizer_config.json, tokenizer.json).
            var tokenizer = Text.Tokenizer.Load(sourceFolder);
            eos = eos.Length > 0 ? eos : tokenizer.EosTokenId is int e ? [e] : [];
            bos = bos.Length > 0 ? bos : tokenizer.BosTokenId is int b ? [b] : [];
        }

        if (eos.Length == 0)
        {
            throw new InvalidDataException($"{sourceFolder}: no eos_token_id in generation_config.json or config.json, and the tokenizer has no EOS token; GenAI needs one to stop");
        }

        double Number(string key, double fallback) => generation?[key] is JsonValue v && v.TryGetValue(out double d) ? d : fallback;
        bool doSample = generation?["do_sample"] is JsonValue sample && sample.TryGetValue(out bool on) && on;
        var decoder = new JsonObject
        {
            ["session_options"] = new JsonObject { ["log_id"] = "onnxruntime-genai", ["provider_options"] = new JsonArray() },
            ["filename"] = ModelFileName,
            ["head_size"] = config.HeadDim,
            ["hidden_size"] = config.HiddenSize,
            ["inputs"] = new JsonObject
            {
                ["input_ids"] = "input_ids",
                ["attention_mask"] = "attention_mask",
                ["position_ids"] = "position_ids",
                ["past_key_names"] = "past_key_values.%d.key",
                ["past_value_names"] = "past_key_values.%d.value",
            },
            ["outputs"] = new JsonObject
            {
                ["logits"] = "logits",
                ["present_key_names"] = "present.%d.key",
                ["present_value_names"] = "present.%d.value",
            },
            ["num_attention_heads"] = config.NumAttentionHeads,
            ["num_hidden_layers"] = config.NumHiddenLayers,
            ["num_key_value_heads"] = config.NumKeyValueHeads,
        };
        return new JsonObject
        {
            ["model"] = new JsonObject
            {
                ["bos_token_id"] = bos.Length > 0 ? bos[0] : eos[0],
                ["context_length"] = contextLength,
                ["decoder"] = decoder,
                ["eos_token_id"] = eos.Length == 1 ? eos[0] : new JsonArray(eos.Select(static e => (JsonNode)e).ToArray()),
                ["pad_token_id"] = pad.Length > 0 ? pad[0] : eos[0],
                ["type"] = config.ModelType,
                ["vocab_size"] = config.VocabSize,
            },
            ["search"] = new JsonObject
            {
                ["diversity_penalty"] = 0.0,
                ["do_sample"] = doSample,
                ["early_stopping"] = true,
                ["length_penalty"] = 1.0,
                ["max_length"] = contextLength,
                ["min_length"] = 0,
                ["no_repeat_ngram_size"] = 0,
                ["num_beams"] = 1,
                ["num_return_sequences"] = 1,

                // GroupQueryAttention writes new keys into one max-length buffer that past and present share; the
                // standard graph concatenates past and new keys, so GenAI keeps them apart.
                ["past_present_share_buffer"] = sharedBuffer,
                ["repetition_penalty"] = Number("repetition_penalty", 1.0),
                ["temperature"] = Number("temperature", 1.0),
                ["top_k"] = (int)Number("top_k", doSample ? 50 : 1),
                ["top_p"] = Number("top_p", 1.0),
            },
        };
    }

    private static JsonObject? ReadObject(string path)
    {
        if (!File.Exists(path))
        {
            return null;
        }

        try
        {
            return JsonNode.Parse(File.ReadAllText(path)) as JsonObject ?? throw new InvalidDataException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid JSON ({e.Message})", e);
        }
    }

    // A token id field: absent or null → none; an integer or a list of integers, each in [0, vocab).
    private static int[] TokenIds(JsonNode? node, string folder, string field, int vocabSize)
    {
        int One(JsonNode? n)
        {
            if (n is JsonValue v && v.TryGetValue(out long id) && id >= 0 && id < vocabSize)
            {
                return (int)id;
            }

            throw new InvalidDataException($"{folder}: {field} (generation_config.json, else config.json): {n?.ToJsonString() ?? "null"} is not a token id in [0, {vocabSize})");
        }

        return node switch
        {
            null => [],
            JsonArray list => list.Select(One).ToArray(),
            _ => [One(node)],
        };
    }
}
