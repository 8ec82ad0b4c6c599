using System.Buffers;
using System.Numerics.Tensors;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>RMSNorm as Hugging Face's LlamaRMSNorm computes it in F32: y = x · rstd · weight, rstd = 1/√(mean(x²) + eps).</summary>
/// <remarks>
/// With C = 0 the mean of no squares is taken as 0, so rstd = 1/√eps. Rows are independent, and the
/// weight gradient sums rows in index order inside fixed column blocks, so results are bit-identical
/// for any <see cref="CpuParallel.Threads"/>. Reference twin: <see cref="RmsNormReference"/>.
/// </remarks>
internal static unsafe class RmsNorm
{
    // Rows per thread below which splitting costs more than it saves (a row of 2048 floats takes ~0.3 µs).
    private const int MinRowsPerThread = 16;

    // Column block for the weight-gradient pass: wide enough for full vectors, fixed so that the
    // partition (and therefore every bit) does not depend on the thread count.
    private const int ColumnBlock = 256;

    /// <summary>x (N,C), weight (C) -> y (N,C), rstd (N).</summary>
    public static void Forward(float* x, float* weight, float* y, float* rstd, int n, int c, float eps)
    {
        Validate(n, c);
        if (!(eps >= 0))
        {
            throw new ArgumentOutOfRangeException(nameof(eps), eps, "RmsNorm eps must be a non-negative number (Hugging Face rms_norm_eps, e.g. 1e-5).");
        }

        if (n == 0)
        {
            return;
        }

        RequireNotNull(x, nameof(x), c);
        RequireNotNull(weight, nameof(weight), c);
        RequireNotNull(y, nameof(y), c);
        RequireNotNull(rstd, nameof(rstd), 1);

        nint xp = (nint)x, wp = (nint)weight, yp = (nint)y, rp = (nint)rstd;
        CpuParallel.For(n, MinRowsPerThread, (start, end) =>
        {
            var w = new ReadOnlySpan<float>((float*)wp, c);
            for (int i = start; i < end; i++)
            {
                var xr = new ReadOnlySpan<float>((float*)xp + (long)i * c, c);
                var yr = new Span<float>((float*)yp + (long)i * c, c);
                float mean = c == 0 ? 0f : TensorPrimitives.SumOfSquares(xr) / c;
                float r = 1f / MathF.Sqrt(mean + eps);
                ((float*)rp)[i] = r;

                // HF order: weight * (x * rstd).
                TensorPrimitives.Multiply(xr, r, yr);
                TensorPrimitives.Multiply(yr, w, yr);
            }
        });
    }

    /// <summary>dy (N,C) -> dx (N,C) overwritten; dweight (C) accumulated when not null.</summary>
    /// <remarks>dx may alias dy (the weight gradient is taken before dx is written); it must not alias x.</remarks>
    public static void Backward(float* dy, float* x, float* weight, float* rstd, float* dx, float* dweight, int n, int c)
    {
        Validate(n, c);
        if (n == 0)
        {
            return;
        }

        RequireNotNull(dy, nameof(dy), c);
        RequireNotNull(x, nameof(x), c);
        RequireNotNull(weight, nameof(weight), c);
        RequireNotNull(rstd, nameof(rstd), 1);
        RequireNotNull(dx, nameof(dx), c);
        if (dx == x && c > 0)
        {
            throw new ArgumentException("RmsNorm.Backward: dx must not alias x (x is read after dx is written).", nameof(dx));
        }

        nint dyp = (nint)dy, xp = (nint)x, wp = (nint)weight, rp = (nint)rstd, dxp = (nint)dx;

        // dweight_j += Σ_rows dy_j · x_j · rstd, rows in order within each column block.
        if (dweight != null && c > 0)
        {
            nint dwp = (nint)dweight;
            int blocks = (c + ColumnBlock - 1) / ColumnBlock;
            CpuParallel.For(blocks, 1, (startBlock, endBlock) =>
            {
                Span<float> tmp = stackalloc float[ColumnBlock];
                for (int blk = startBlock; blk < endBlock; blk++)
                {
                    int c0 = blk * ColumnBlock;
                    int width = Math.Min(ColumnBlock, c - c0);
                    var t = tmp[..width];
                    var dw = new Span<float>((float*)dwp + c0, width);
                    for (int i = 0; i < n; i++)
                    {
                        long off = (long)i * c + c0;
                        TensorPrimitives.Multiply(new ReadOnlySpan<float>((float*)xp + off, width), ((float*)rp)[i], t);
                        TensorPrimitives.Multiply(new ReadOnlySpan<float>((float*)dyp + off, width), t, t);
                        TensorPrimitives.Add(dw, t, dw);
                    }
                }
            });
        }

        // dx = rstd · (g − x · rstd² · mean(g · x)) with g = weight · dy.
        CpuParallel.For(n, MinRowsPerThread, (start, end) =>
        {
            float[] rented = ArrayPool<float>.Shared.Rent(c);
            try
            {
                var g = rented.AsSpan(0, c);
                var w = new ReadOnlySpan<float>((float*)wp, c);
                for (int i = start; i < end; i++)
                {
                    long off = (long)i * c;
                    var xr = new ReadOnlySpan<float>((float*)xp + off, c);
                    var dxr = new Span<float>((float*)dxp + off, c);
                    float r = ((float*)rp)[i];
                    TensorPrimitives.Multiply(new ReadOnlySpan<float>((float*)dyp + off, c), w, g);
                    float coef = c == 0 ? 0f : TensorPrimitives.Dot(g, xr) * r * r * r / c;
                    TensorPrimitives.Multiply(g, r, dxr);
                    TensorPrimitives.MultiplyAdd(xr, -coef, dxr, dxr);
                }
            }
            finally
            {
                ArrayPool<float>.Shared.Return(rented);
            }
        });
    }

    private static void Validate(int n, int c)
    {
        if (n < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(n), n, "RmsNorm: row count N must be non-negative.");
        }

        if (c < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(c), c, "RmsNorm: channel count C must be non-negative.");
        }
    }

    private static void RequireNotNull(float* p, string name, int width)
    {
        if (p == null && width > 0)
        {
            throw new ArgumentNullException(name, $"RmsNorm: '{name}' is null but N·C > 0.");
        }
    }
}
