using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// QLoRA storage of frozen base weights: every Linear of the decoder layers becomes NF4 (block 64,
/// optional double quantization); the embedding and lm_head are kept in BF16, QLoRA's 16-bit compute
/// dtype (quantizing them costs more accuracy than it saves memory); norms and biases stay F32.
/// </summary>
public static class Quantization
{
    /// <summary>
    /// Quantizes the decoder layers' Linear weights to NF4 in place (they must be frozen). <paramref name="cancellationToken"/>
    /// is checked before each layer; a cancelled quantization leaves the model partly quantized, to be disposed.
    /// </summary>
    public static void QuantizeNf4(this LlamaForCausalLM model, bool doubleQuant, CancellationToken cancellationToken = default)
    {
        foreach (var linear in model.Layers.SelectMany(static l => l.Projections()))
        {
            cancellationToken.ThrowIfCancellationRequested();
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
                // Quantized on the host (one layer at a time), then moved packed to the model's backend.
                var weight = linear.Weight.Value;
                using var host = weight.IsHost ? null : weight.ToHost();
                var packed = Nf4.Quantize(host ?? weight, doubleQuant);
                linear.Weight.Swap(weight.IsHost ? packed : Parameter.Transfer(packed, weight.Backend)).Dispose();
            }
        }

        // A classifier's score head stays F32: it is small and trained fully (modules_to_save).
        var kept = model.Config.NumLabels is null ? new[] { model.EmbedTokens, model.LmHead.Weight } : [model.EmbedTokens];
        foreach (var p in kept.Distinct())
        {
            if (!p.Trainable && p.Value.DType == DType.F32)
            {
                p.Swap(p.Value.To(DType.BF16)).Dispose();
            }
        }
    }
}
