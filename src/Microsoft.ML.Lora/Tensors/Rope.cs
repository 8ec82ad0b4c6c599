using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>rope_scaling of a Hugging Face config: <c>linear</c> or <c>llama3</c> (null means none).</summary>
/// <param name="Type">"linear" or "llama3" ("default" is accepted and means none, as in Hugging Face's rope_type).</param>
/// <param name="Factor">factor.</param>
/// <param name="LowFreqFactor">low_freq_factor (llama3).</param>
/// <param name="HighFreqFactor">high_freq_factor (llama3).</param>
/// <param name="OriginalMaxPositionEmbeddings">original_max_position_embeddings (llama3).</param>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192);

/// <summary>cos/sin tables (MaxPositions, HS/2) for rotary embeddings in Hugging Face's rotate-half layout.</summary>
public sealed unsafe class RopeTable : IDisposable
{
    private readonly double[] inverseFrequencies;
    private float* cos;
    private float* sin;

    private RopeTable(int headDim, int maxPositions, double[] inverseFrequencies)
    {
        HeadDim = headDim;
        MaxPositions = maxPositions;
        this.inverseFrequencies = inverseFrequencies;
        int half = headDim / 2;
        nuint bytes = (nuint)((long)maxPositions * half * sizeof(float));
        cos = (float*)NativeMemory.AlignedAlloc(Math.Max(bytes, 1), NativePool.Alignment);
        sin = (float*)NativeMemory.AlignedAlloc(Math.Max(bytes, 1), NativePool.Alignment);
        for (int p = 0; p < maxPositions; p++)
        {
            for (int i = 0; i < half; i++)
            {
                // Angles in double so that large positions keep their precision; stored as F32.
                double angle = p * inverseFrequencies[i];
                cos[(long)p * half + i] = (float)Math.Cos(angle);
                sin[(long)p * half + i] = (float)Math.Sin(angle);
            }
        }
    }

    /// <summary>Head size HS (even).</summary>
    public int HeadDim { get; }

    /// <summary>Positions covered.</summary>
    public int MaxPositions { get; }

    /// <summary>inv_freq (HS/2) after scaling, as used to build the table.</summary>
    public ReadOnlySpan<double> InverseFrequencies => inverseFrequencies;

    /// <summary>cos of the angles of one position (HS/2).</summary>
    public ReadOnlySpan<float> CosRow(int position) => new(RowPointer(cos, position), HeadDim / 2);

    /// <summary>sin of the angles of one position (HS/2).</summary>
    public ReadOnlySpan<float> SinRow(int position) => new(RowPointer(sin, position), HeadDim / 2);

    /// <summary>Pointer to the cos table (MaxPositions, HS/2); valid until <see cref="Dispose"/>.</summary>
    internal float* Cos => cos != null ? cos : throw Disposed();

    /// <summary>Pointer to the sin table (MaxPositions, HS/2); valid until <see cref="Dispose"/>.</summary>
    internal float* Sin => sin != null ? sin : throw Disposed();

    /// <summary>Builds the table: inv_freq_i = θ^(−2i/HS), adjusted by <paramref name="scaling"/>.</summary>
    public static RopeTable Create(int headDim, double theta, RopeScaling? scaling, int maxPositions)
    {
        if (headDim <= 0 || headDim % 2 != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(headDim), headDim, "RoPE head size must be positive and even (rotate-half splits it in two).");
        }

        if (!(theta > 0) || double.IsInfinity(theta))
        {
            throw new ArgumentOutOfRangeException(nameof(theta), theta, "RoPE theta (rope_theta) must be a positive finite number, e.g. 10000 or 500000.");
        }

        if (maxPositions < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(maxPositions), maxPositions, "RoPE maxPositions must be non-negative.");
        }

        return new RopeTable(headDim, maxPositions, ComputeInverseFrequencies(headDim, theta, scaling));
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        if (cos != null)
        {
            NativeMemory.AlignedFree(cos);
            NativeMemory.AlignedFree(sin);
            cos = null;
            sin = null;
        }
    }

    // Hugging Face modeling_rope_utils: _compute_default / _compute_linear_scaling / _compute_llama3_parameters.
    private static double[] ComputeInverseFrequencies(int headDim, double theta, RopeScaling? scaling)
    {
        int half = headDim / 2;
        var inv = new double[half];
        for (int i = 0; i < half; i++)
        {
            inv[i] = 1.0 / Math.Pow(theta, 2.0 * i / headDim);
        }

        if (scaling is null || scaling.Type == "default")
        {
            return inv;
        }

        if (!(scaling.Factor > 0) || double.IsInfinity(scaling.Factor))
        {
            throw new ArgumentException($"rope_scaling factor must be a positive finite number, got {scaling.Factor}.", nameof(scaling));
        }

        switch (scaling.Type)
        {
            case "linear":
                for (int i = 0; i < half; i++)
                {
                    inv[i] /= scaling.Factor;
                }

                return inv;

            case "llama3":
                if (scaling.OriginalMaxPositionEmbeddings <= 0 || !(scaling.HighFreqFactor > scaling.LowFreqFactor) || !(scaling.LowFreqFactor > 0))
                {
                    throw new ArgumentException(
                        $"rope_scaling llama3 needs original_max_position_embeddings > 0 and 0 < low_freq_factor < high_freq_factor; got {scaling.OriginalMaxPositionEmbeddings}, {scaling.LowFreqFactor}, {scaling.HighFreqFactor}.",
                        nameof(scaling));
                }

                double oldContext = scaling.OriginalMaxPositionEmbeddings;
                double lowFreqWavelen = oldContext / scaling.LowFreqFactor;
                double highFreqWavelen = oldContext / scaling.HighFreqFactor;
                for (int i = 0; i < half; i++)
                {
                    double wavelen = 2 * Math.PI / inv[i];
                    if (wavelen > lowFreqWavelen)
                    {
                        inv[i] /= scaling.Factor;
                    }
                    else if (!(wavelen < highFreqWavelen))
                    {
                        double smooth = (oldContext / wavelen - scaling.LowFreqFactor) / (scaling.HighFreqFactor - scaling.LowFreqFactor);
                        inv[i] = (1 - smooth) * inv[i] / scaling.Factor + smooth * inv[i];
                    }
                }

                return inv;

            default:
                throw new ArgumentException(
                    $"rope_scaling type '{scaling.Type}' is not supported; expected 'linear' or 'llama3' (or no rope_scaling).", nameof(scaling));
        }
    }

    private float* RowPointer(float* table, int position)
    {
        if (table == null)
        {
            throw Disposed();
        }

        if ((uint)position >= (uint)MaxPositions)
        {
            throw new ArgumentOutOfRangeException(nameof(position), position, $"RoPE table covers positions [0, {MaxPositions}).");
        }

        return table + (long)position * (HeadDim / 2);
    }

    private static ObjectDisposedException Disposed() => new(nameof(RopeTable));
}

/// <summary>Rotary position embedding, rotate-half layout: (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin).</summary>
/// <remarks>Reference twin: <see cref="RopeReference"/>. Rows (b, t) are independent, so any thread count gives the same bits.</remarks>
internal static unsafe class Rope
{
    // Tokens per thread below which splitting is not worth a thread hand-off (one token of 8×128 is ~0.2 µs).
    private const int MinTokensPerThread = 32;

    /// <summary>
    /// x (B,T,NH,HS) rotated in place. Token t of a row has position <paramref name="positions"/>[b·T + t]
    /// when given (packed examples, or generation past a KV cache), else t.
    /// </summary>
    public static void Forward(float* x, RopeTable table, int b, int t, int nh, int hs, int* positions = null) => Apply(x, table, b, t, nh, hs, positions, inverse: false);

    /// <summary>dx (B,T,NH,HS): gradient through the rotation, in place (the inverse rotation).</summary>
    public static void Backward(float* dx, RopeTable table, int b, int t, int nh, int hs, int* positions = null) => Apply(dx, table, b, t, nh, hs, positions, inverse: true);

    private static void Apply(float* x, RopeTable table, int b, int t, int nh, int hs, int* positions, bool inverse)
    {
        ArgumentNullException.ThrowIfNull(table);
        if (b < 0 || t < 0 || nh < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(b), $"RoPE: B, T and NH must be non-negative; got B={b}, T={t}, NH={nh}.");
        }

        if (hs != table.HeadDim)
        {
            throw new ArgumentException($"RoPE: head size {hs} does not match the table's head size {table.HeadDim}.", nameof(hs));
        }

        if (positions != null)
        {
            for (long i = 0; i < (long)b * t; i++)
            {
                if ((uint)positions[i] >= (uint)table.MaxPositions)
                {
                    throw new ArgumentOutOfRangeException(nameof(positions), positions[i], $"RoPE: position {positions[i]} of token {i} is outside the table's {table.MaxPositions} positions.");
                }
            }
        }
        else if (t > table.MaxPositions)
        {
            throw new ArgumentOutOfRangeException(nameof(t), t, $"RoPE: sequence length {t} exceeds the table's {table.MaxPositions} positions; build the table with a larger maxPositions.");
        }

        long tokens = (long)b * t;
        if (tokens == 0 || nh == 0)
        {
            return;
        }

        if (x == null)
        {
            throw new ArgumentNullException(nameof(x));
        }

        if (tokens > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(b), $"RoPE: B·T = {tokens} exceeds int range.");
        }

        nint xp = (nint)x, cp = (nint)table.Cos, sp = (nint)table.Sin, pp = (nint)positions;
        int half = hs / 2;

        // Backward multiplies by the transpose: the rotation by −angle, i.e. sin negated.
        float sign = inverse ? -1f : 1f;
        CpuParallel.For((int)tokens, MinTokensPerThread, (start, end) =>
        {
            for (int token = start; token < end; token++)
            {
                int pos = pp == 0 ? token % t : ((int*)pp)[token];
                float* cosRow = (float*)cp + (long)pos * half;
                float* sinRow = (float*)sp + (long)pos * half;
                float* row = (float*)xp + (long)token * nh * hs;
                for (int h = 0; h < nh; h++)
                {
                    Rotate(row + (long)h * hs, cosRow, sinRow, half, sign);
                }
            }
        });
    }

    // x1' = x1·cos − s·x2·sin, x2' = x2·cos + s·x1·sin (s = ±1), vectors first, then a scalar tail.
    // The scalar tail uses the same two roundings per product-sum as the vector body (no FMA), so
    // every element sees the same arithmetic wherever it falls.
    private static void Rotate(float* head, float* cos, float* sin, int half, float sign)
    {
        float* x1 = head;
        float* x2 = head + half;
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
        {
            var s = Vector512.Create(sign);
            for (; i <= half - Vector512<float>.Count; i += Vector512<float>.Count)
            {
                var a = Vector512.Load(x1 + i);
                var bb = Vector512.Load(x2 + i);
                var c = Vector512.Load(cos + i);
                var sn = Vector512.Load(sin + i) * s;
                Vector512.Store(a * c - bb * sn, x1 + i);
                Vector512.Store(bb * c + a * sn, x2 + i);
            }
        }

        if (Vector256.IsHardwareAccelerated)
        {
            var s = Vector256.Create(sign);
            for (; i <= half - Vector256<float>.Count; i += Vector256<float>.Count)
            {
                var a = Vector256.Load(x1 + i);
                var bb = Vector256.Load(x2 + i);
                var c = Vector256.Load(cos + i);
                var sn = Vector256.Load(sin + i) * s;
                Vector256.Store(a * c - bb * sn, x1 + i);
                Vector256.Store(bb * c + a * sn, x2 + i);
            }
        }

        for (; i < half; i++)
        {
            float a = x1[i], bb = x2[i], c = cos[i], sn = sin[i] * sign;
            x1[i] = a * c - bb * sn;
            x2[i] = bb * c + a * sn;
        }
    }
}
