using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// AdamW (Loshchilov &amp; Hutter, "Decoupled Weight Decay Regularization"), computed as PyTorch's
/// <c>torch.optim.AdamW</c> does, per element, at step t (1-based):
/// p ← p·(1 − lr·λ); m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²;
/// p ← p − (lr / (1−β₁ᵗ)) · m / (√v / √(1−β₂ᵗ) + ε).
/// Moments are F32 tensors from the pool, one pair per parameter; the update is elementwise with no
/// reduction, so it is deterministic. <see cref="AdamWReference"/> is its float64 twin.
/// </summary>
public sealed class AdamW : IDisposable
{
    private readonly Parameter[] parameters;
    private readonly Tensor[] expAvg;
    private readonly Tensor[] expAvgSq;

    /// <summary>Creates zeroed moments for each trainable parameter.</summary>
    public AdamW(IReadOnlyList<Parameter> parameters, double beta1 = 0.9, double beta2 = 0.999, double epsilon = 1e-8, double weightDecay = 0.0)
    {
        ArgumentNullException.ThrowIfNull(parameters);
        Beta1 = beta1;
        Beta2 = beta2;
        Epsilon = epsilon;
        WeightDecay = weightDecay;
        this.parameters = [.. parameters];
        expAvg = new Tensor[this.parameters.Length];
        expAvgSq = new Tensor[this.parameters.Length];
        try
        {
            for (int i = 0; i < this.parameters.Length; i++)
            {
                var p = this.parameters[i];
                if (!p.Trainable || p.Grad is null)
                {
                    throw new ArgumentException($"parameter '{p.Name}' is not trainable; AdamW only updates trainable parameters", nameof(parameters));
                }

                expAvg[i] = p.Value.Backend.Zeros(DType.F32, p.Value.Shape.ToArray());
                expAvgSq[i] = p.Value.Backend.Zeros(DType.F32, p.Value.Shape.ToArray());
            }
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>β₁.</summary>
    public double Beta1 { get; }

    /// <summary>β₂.</summary>
    public double Beta2 { get; }

    /// <summary>ε.</summary>
    public double Epsilon { get; }

    /// <summary>λ (decoupled).</summary>
    public double WeightDecay { get; }

    /// <summary>Steps taken (t after the last <see cref="Step"/>); restored from checkpoints.</summary>
    public long StepCount { get; internal set; }

    /// <summary>The parameters, in the order of their moments.</summary>
    public IReadOnlyList<Parameter> Parameters => parameters;

    /// <summary>First moment m of parameter <paramref name="index"/> (F32, its shape).</summary>
    public Tensor ExpAvg(int index) => expAvg[index];

    /// <summary>Second moment v of parameter <paramref name="index"/> (F32, its shape).</summary>
    public Tensor ExpAvgSq(int index) => expAvgSq[index];

    /// <summary>Applies one update with <paramref name="learningRate"/> from each parameter's gradient, on the parameters' backend.</summary>
    public void Step(double learningRate)
    {
        StepCount++;
        var c = AdamWCoefficients.For(StepCount, learningRate, Beta1, Beta2, Epsilon, WeightDecay);
        for (int i = 0; i < parameters.Length; i++)
        {
            var p = parameters[i];
            p.Value.Backend.AdamWUpdate(p.Value, p.Grad!, expAvg[i], expAvgSq[i], c);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in expAvg)
        {
            t?.Dispose();
        }

        foreach (var t in expAvgSq)
        {
            t?.Dispose();
        }
    }
}
