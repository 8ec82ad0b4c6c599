using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// RMSNorm with a learned scale (C), always F32 (it is tiny and precision-sensitive). With
/// <see cref="WeightOffset"/> 1 it scales by (1 + weight), as Gemma's norms do.
/// </summary>
public sealed class RmsNormLayer : IDisposable
{
    /// <summary>Wraps a (C) F32 weight.</summary>
    public RmsNormLayer(Parameter weight, float eps)
    {
        if (weight.Value.Rank != 1 || weight.Value.DType != DType.F32)
        {
            throw new ArgumentException($"'{weight.Name}' must be an F32 vector; got {weight.Value}");
        }

        Weight = weight;
        Eps = eps;
    }

    /// <summary>Scale (C).</summary>
    public Parameter Weight { get; }

    /// <summary>rms_norm_eps.</summary>
    public float Eps { get; }

    /// <summary>Added to the weight before scaling: 0, or 1 for Gemma's x̂·(1 + weight).</summary>
    public float WeightOffset { get; init; }

    /// <summary>x (N,C) -> y (N,C), rstd (N).</summary>
    public void Forward(Tensor x, Tensor y, Tensor rstd) => x.Backend.RmsNormForward(x, Weight.Value, y, rstd, Eps, WeightOffset);

    /// <summary>dy (N,C) -> dx (N,C) overwritten; dweight accumulated when trainable.</summary>
    public void Backward(Tensor dy, Tensor x, Tensor rstd, Tensor dx) =>
        x.Backend.RmsNormBackward(dy, x, Weight.Value, rstd, dx, Weight.Trainable ? Weight.Grad! : null, WeightOffset);

    /// <inheritdoc/>
    public void Dispose() => Weight.Dispose();
}
