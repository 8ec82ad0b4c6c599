using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>
/// A tiny model folder with a real tokenizer.json: byte-level BPE (GPT-2's byte-to-character map, no
/// merges, so one token per UTF-8 byte) plus &lt;s&gt; (256) and &lt;/s&gt; (257), and a random 2-layer Llama.
/// </summary>
internal static class TinyTextModel
{
    public const int Bos = 256;
    public const int Eos = 257;

    public static string Create(string directory, int seed = 1)
    {
        var config = LlamaConfig.Create(vocabSize: 258, hiddenSize: 64, intermediateSize: 128, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
        using (var model = LlamaForCausalLM.CreateRandom(config, seed: seed))
        {
            model.Save(directory);
        }

        var vocab = new JsonObject();
        foreach (var (b, ch) in ByteToChar())
        {
            vocab[ch.ToString()] = b;
        }

        JsonObject Added(int id, string content) => new()
        {
            ["id"] = id, ["content"] = content, ["single_word"] = false, ["lstrip"] = false, ["rstrip"] = false, ["normalized"] = false, ["special"] = true,
        };
        var tokenizer = new JsonObject
        {
            ["version"] = "1.0",
            ["added_tokens"] = new JsonArray(Added(Bos, "<s>"), Added(Eos, "</s>")),
            ["normalizer"] = null,
            ["pre_tokenizer"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["post_processor"] = null,
            ["decoder"] = new JsonObject { ["type"] = "ByteLevel", ["add_prefix_space"] = false, ["trim_offsets"] = true, ["use_regex"] = true },
            ["model"] = new JsonObject { ["type"] = "BPE", ["vocab"] = vocab, ["merges"] = new JsonArray() },
        };
        File.WriteAllText(Path.Combine(directory, "tokenizer.json"), tokenizer.ToJsonString());
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"add_bos_token\": false}");
        return directory;
    }

    // GPT-2's byte → printable character map: printable Latin-1 bytes map to themselves, the rest to 256+n.
    private static IEnumerable<(int Byte, char Char)> ByteToChar()
    {
        int extra = 0;
        for (int b = 0; b < 256; b++)
        {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            yield return (b, printable ? (char)b : (char)(256 + extra++));
        }
    }
}
