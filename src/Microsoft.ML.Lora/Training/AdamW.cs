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

                expAvg[i] = Tensor.Zeros(DType.F32, p.Value.Shape.ToArray());
                expAvgSq[i] = Tensor.Zeros(DType.F32, p.Value.Shape.ToArray());
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

    /// <summary>Applies one update with <paramref name="learningRate"/> from each parameter's gradient.</summary>
    public void Step(double learningRate)
    {
        StepCount++;
        var c = Coefficients.For(StepCount, learningRate, Beta1, Beta2, Epsilon, WeightDecay);
        for (int i = 0; i < parameters.Length; i++)
        {
            Update(parameters[i].Value.AsF32(), parameters[i].Grad!.AsF32(), expAvg[i].AsF32(), expAvgSq[i].AsF32(), c);
        }
    }

    /// <summary>The per-element update for one parameter (exposed for tests against the reference).</summary>
    internal static void Update(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in Coefficients c)
    {
        if (g.Length != p.Length || m.Length != p.Length || v.Length != p.Length)
        {
            throw new ArgumentException($"AdamW update: lengths differ (p {p.Length}, g {g.Length}, m {m.Length}, v {v.Length})");
        }

        for (int i = 0; i < p.Length; i++)
        {
            float gi = g[i];
            float mi = (c.Beta1 * m[i]) + (c.OneMinusBeta1 * gi);
            float vi = (c.Beta2 * v[i]) + (c.OneMinusBeta2 * gi * gi);
            m[i] = mi;
            v[i] = vi;
            float denom = (MathF.Sqrt(vi) * c.InvSqrtBiasCorrection2) + c.Epsilon;
            p[i] = (p[i] * c.Decay) - (c.StepSize * mi / denom);
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

    /// <summary>Per-step scalars, computed in double and rounded once to float.</summary>
    internal readonly record struct Coefficients(float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float Epsilon, float Decay, float StepSize, float InvSqrtBiasCorrection2)
    {
        public static Coefficients For(long t, double lr, double beta1, double beta2, double epsilon, double weightDecay)
        {
            double bc1 = 1.0 - Math.Pow(beta1, t), bc2 = 1.0 - Math.Pow(beta2, t);
            return new((float)beta1, (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2), (float)epsilon, (float)(1.0 - (lr * weightDecay)), (float)(lr / bc1), (float)(1.0 / Math.Sqrt(bc2)));
        }
    }
}
