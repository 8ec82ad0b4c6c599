using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>Gradient bookkeeping of an optimizer step: token-weighted accumulation, global norm, clipping.</summary>
public static class Gradients
{
    /// <summary>
    /// Runs forward/backward over the micro-batches of one optimizer step and leaves in each trainable
    /// parameter's gradient d(Σ token losses / N)/dp, N = tokens of all the micro-batches: the same
    /// gradient as one batch of all their rows. ForwardBackward adds gᵢ = d(mean loss of micro-batch i)/dp,
    /// i.e. scaled by 1/nᵢ; the target is Σ (nᵢ/N)·gᵢ. The buffer keeps Σ_{k≤i} (n_k/nᵢ)·g_k: before
    /// micro-batch i it is multiplied by n_{i−1}/nᵢ, and at the end by n_last/N. No second buffer is needed,
    /// and with one micro-batch the model's gradient is left exactly as it is.
    /// </summary>
    /// <param name="model">The model.</param>
    /// <param name="trainable">Its trainable parameters (their gradients are zeroed first).</param>
    /// <param name="microBatches">The micro-batches of the step.</param>
    /// <param name="dropoutSeed">Dropout seed of micro-batch i of the step, set on the model before its forward.</param>
    /// <param name="cancellationToken">Checked before each micro-batch.</param>
    /// <returns>Summed loss and token count over all micro-batches.</returns>
    public static LossResult Accumulate(LlamaForCausalLM model, IReadOnlyList<Parameter> trainable, IReadOnlyList<CausalLmBatch> microBatches, Func<int, ulong>? dropoutSeed = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(trainable);
        ArgumentNullException.ThrowIfNull(microBatches);
        foreach (var p in trainable)
        {
            p.ZeroGrad();
        }

        long total = 0;
        foreach (var b in microBatches)
        {
            total += b.CountTargets();
        }

        var sum = default(LossResult);
        long previous = 0;
        for (int i = 0; i < microBatches.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            long n = microBatches[i].CountTargets();
            if (n == 0)
            {
                // Contributes no loss and no gradient (the model scales it by 0).
                continue;
            }

            if (previous != 0 && previous != n)
            {
                Scale(trainable, (double)previous / n);
            }

            model.DropoutSeed = dropoutSeed?.Invoke(i) ?? 0;
            sum += model.ForwardBackward(microBatches[i]);
            previous = n;
        }

        if (previous != 0 && previous != total)
        {
            Scale(trainable, (double)previous / total);
        }

        return sum;
    }

    /// <summary>‖g‖₂ over every element of every gradient, summed in double in parameter order (deterministic).</summary>
    public static double GlobalNorm(IReadOnlyList<Parameter> trainable)
    {
        if (trainable.Count == 0)
        {
            return 0;
        }

        var grads = trainable.Select(Grad).ToArray();
        return Math.Sqrt(grads[0].Backend.SumOfSquares(grads));
    }

    /// <summary>
    /// Clips the gradients to global norm <paramref name="maxNorm"/> (g ← g·max/‖g‖ when ‖g‖ &gt; max; 0 =
    /// off) and returns the norm before clipping. PyTorch's <c>clip_grad_norm_</c> divides by ‖g‖ + 1e-6 to
    /// guard against 0; here the division only happens when ‖g‖ &gt; max &gt; 0, so the guard is not needed
    /// and the clipped norm is max itself. A non-finite norm is returned without touching the gradients.
    /// </summary>
    public static double ClipGlobalNorm(IReadOnlyList<Parameter> trainable, double maxNorm)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxNorm);
        double norm = GlobalNorm(trainable);
        if (maxNorm > 0 && double.IsFinite(norm) && norm > maxNorm)
        {
            Scale(trainable, maxNorm / norm);
        }

        return norm;
    }

    /// <summary>Multiplies every gradient by <paramref name="factor"/> (rounded once to float).</summary>
    public static void Scale(IReadOnlyList<Parameter> trainable, double factor)
    {
        float f = (float)factor;
        foreach (var p in trainable)
        {
            var g = Grad(p);
            g.Backend.Scale(g, f);
        }
    }

    private static Tensor Grad(Parameter p) =>
        p.Grad ?? throw new InvalidOperationException($"parameter '{p.Name}' has no gradient: it is not trainable");
}
