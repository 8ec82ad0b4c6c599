using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Text;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>Tiny model folders for the pipeline tests, with the byte-level tokenizer of <see cref="TinyTextModel"/>.</summary>
internal static class PipelineTestModels
{
    /// <summary>
    /// The tiny random Llama with its final norm weight set to <paramref name="normScale"/>. With N(0, 0.02)
    /// head rows and unit norm weights the logits of a random model span about ±1.3, too flat for any
    /// adapter of the body to make a prediction confident; a pretrained model's logits span tens. Scaling
    /// the final norm gives the random base that range, so LoRA on the decoder layers can learn.
    /// </summary>
    public static string CausalLm(string directory, float normScale = 8f, int seed = 1)
    {
        string scratch = TinyTextModel.Create(directory + ".random", seed);
        try
        {
            using var model = LlamaForCausalLM.Load(scratch);
            model.Norm.Weight.Value.AsF32().Fill(normScale);
            model.Save(directory);
        }
        finally
        {
            Directory.Delete(scratch, recursive: true);
        }

        return directory;
    }

    /// <summary>
    /// <see cref="CausalLm"/> with ChatML's markers as its special tokens: &lt;|im_start|&gt; (256) and
    /// &lt;|im_end|&gt; (257, also EOS), as a ChatML model's tokenizer has them, so a chat turn ends in one token.
    /// </summary>
    public static string ChatMl(string directory)
    {
        CausalLm(directory);
        string tokenizer = Path.Combine(directory, "tokenizer.json");
        var json = JsonNode.Parse(File.ReadAllText(tokenizer))!;
        json["added_tokens"]![0]!["content"] = "<|im_start|>";
        json["added_tokens"]![1]!["content"] = "<|im_end|>";
        File.WriteAllText(tokenizer, json.ToJsonString());
        File.WriteAllText(Path.Combine(directory, "tokenizer_config.json"), "{\"bos_token\": null, \"eos_token\": \"<|im_end|>\", \"add_bos_token\": false}");
        return directory;
    }
}
