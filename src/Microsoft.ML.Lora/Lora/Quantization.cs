using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// QLoRA storage of frozen base weights: every Linear of the decoder layers becomes NF4 (block 64,
/// optional double quantization). Embeddings, norms, biases and lm_head keep their dtype, as
/// QLoRA does: they are small next to the layers, and the head's precision matters for the loss.
/// </summary>
public static class Quantization
{
    /// <summary>Quantizes the decoder layers' Linear weights to NF4 in place (they must be frozen).</summary>
    public static void QuantizeNf4(this LlamaForCausalLM model, bool doubleQuant)
    {
        foreach (var linear in model.Layers.SelectMany(static l => l.Projections()))
        {
            if (linear.Weight.Trainable)
            {
                throw new InvalidOperationException($"'{linear.Weight.Name}' is trainable; NF4 weights are frozen (QLoRA trains adapters only)");
            }

            if (linear.MergedAdapter is not null)
            {
                throw new InvalidOperationException($"{linear.Name}: unmerge adapter '{linear.MergedAdapter}' before quantizing");
            }

            if (linear.Weight.Value.DType != DType.NF4)
            {
                linear.Weight.Swap(Nf4.Quantize(linear.Weight.Value, doubleQuant)).Dispose();
            }
        }
    }
}
