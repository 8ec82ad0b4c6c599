using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// y = x·Wᵀ + b with W (OC,C) as Hugging Face stores it. Stateless over activations: the caller keeps
/// the input alive and hands it back to <see cref="Backward"/>.
/// </summary>
public sealed unsafe class Linear : IDisposable
{
    /// <summary>Wraps existing parameters; shapes are checked.</summary>
    public Linear(Parameter weight, Parameter? bias)
    {
        if (weight.Value.Rank != 2)
        {
            throw new ArgumentException($"'{weight.Name}' must be 2-D (out, in); got {Tensor.Format(weight.Value.Shape)}");
        }

        if (bias is not null && (bias.Value.Rank != 1 || bias.Value.Dim(0) != weight.Value.Dim(0) || bias.Value.DType != DType.F32))
        {
            throw new ArgumentException($"'{bias.Name}' must be F32 ({weight.Value.Dim(0)}); got {bias.Value}");
        }

        Weight = weight;
        Bias = bias;
    }

    /// <summary>W (OC,C).</summary>
    public Parameter Weight { get; }

    /// <summary>b (OC) or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>C.</summary>
    public int InFeatures => Weight.Value.Dim(1);

    /// <summary>OC.</summary>
    public int OutFeatures => Weight.Value.Dim(0);

    /// <summary>x (N,C) -> y (N,OC).</summary>
    public void Forward(Tensor x, Tensor y)
    {
        int n = Rows(x, InFeatures, "input");
        Rows(y, OutFeatures, "output", n);
        MatMulWeight(x.F32Ptr, n, transposeWeight: true, y.F32Ptr, accumulate: false);
        if (Bias is not null)
        {
            var b = Bias.Value.AsF32();
            float* yp = y.F32Ptr;
            for (int i = 0; i < n; i++)
            {
                var row = new Span<float>(yp + ((long)i * OutFeatures), OutFeatures);
                TensorPrimitives.Add(row, b, row);
            }
        }
    }

    /// <summary>
    /// dy (N,OC), x (N,C) -> dx (N,C), overwritten or, with <paramref name="accumulateDx"/>, added to;
    /// dW += dyᵀ·x and db += Σ dy only when those parameters are trainable. dx may be null.
    /// </summary>
    public void Backward(Tensor dy, Tensor x, Tensor? dx, bool accumulateDx = false)
    {
        int n = Rows(dy, OutFeatures, "output gradient");
        Rows(x, InFeatures, "input", n);
        if (dx is not null)
        {
            Rows(dx, InFeatures, "input gradient", n);
            MatMulWeight(dy.F32Ptr, n, transposeWeight: false, dx.F32Ptr, accumulateDx);
        }

        if (Weight.Trainable)
        {
            // dW (OC,C) += dyᵀ (OC,N) · x (N,C)
            Gemm.Run(true, false, OutFeatures, InFeatures, n, dy.F32Ptr, OutFeatures, x.F32Ptr, InFeatures, Weight.Grad!.F32Ptr, InFeatures, accumulate: true);
        }

        if (Bias is { Trainable: true })
        {
            var db = Bias.Grad!.AsF32();
            float* dyp = dy.F32Ptr;
            for (int i = 0; i < n; i++)
            {
                TensorPrimitives.Add(db, new ReadOnlySpan<float>(dyp + ((long)i * OutFeatures), OutFeatures), db);
            }
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
    }

    // transposeWeight: out (N,OC) = a (N,C)·Wᵀ; otherwise out (N,C) = a (N,OC)·W.
    private void MatMulWeight(float* a, int n, bool transposeWeight, float* output, bool accumulate)
    {
        int oc = OutFeatures, c = InFeatures;
        int cols = transposeWeight ? oc : c;
        int inner = transposeWeight ? c : oc;
        var w = Weight.Value;
        if (w.DType == DType.BF16)
        {
            Gemm.Run(false, transposeWeight, n, cols, inner, a, inner, w.Bf16Ptr, c, output, cols, accumulate);
        }
        else
        {
            Gemm.Run(false, transposeWeight, n, cols, inner, a, inner, w.F32Ptr, c, output, cols, accumulate);
        }
    }

    private int Rows(Tensor t, int width, string what, int expectedRows = -1)
    {
        if (t.DType != DType.F32 || t.Rank != 2 || t.Dim(1) != width || (expectedRows >= 0 && t.Dim(0) != expectedRows))
        {
            string rows = expectedRows >= 0 ? expectedRows.ToString(System.Globalization.CultureInfo.InvariantCulture) : "N";
            throw new ArgumentException($"{Weight.Name}: {what} must be F32 ({rows}, {width}); got {t}");
        }

        return t.Dim(0);
    }
}
