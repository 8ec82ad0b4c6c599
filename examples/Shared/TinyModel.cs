using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Examples;

/// <summary>
/// A tiny Llama model folder made on the spot, so the examples run offline in seconds: a random 2-layer
/// model (hidden 64) and a byte-level BPE tokenizer.json with one token per UTF-8 byte plus &lt;s&gt; and
/// &lt;/s&gt;. The final norm weight is raised so the random model's logits span the range a pretrained
/// model's do; otherwise no adapter of the body could make a prediction confident.
/// </summary>
internal static class TinyModel
{
    public static string Create(string directory)
    {
        var config = LlamaConfig.Create(vocabSize: 258, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
        using (var model = LlamaForCausalLM.CreateRandom(config, seed: 1))
        {
            model.Norm.Weight.Value.AsF32().Fill(8f);
            model.Save(directory);
        }

        var vocab = new JsonObject();
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            // GPT-2's byte → character map: printable Latin-1 bytes stand for themselves, the rest map to 256 + n.
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            vocab[(printable ? (char)b : (char)(256 + extra++)).ToString()] = b;
        }

        JsonObject Special(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
        };
        JsonObject ByteLevel() => new() { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Special(256, "<s>"), Special(257, "</s>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = ByteLevel(),
            ["post_processor"] = null,
            ["decoder"] = ByteLevel(),
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString());
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_bos_token\": false}");
        return directory;
    }
}
