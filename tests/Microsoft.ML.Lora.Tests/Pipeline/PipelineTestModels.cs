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
}
