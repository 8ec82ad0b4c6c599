namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Naive twin of <see cref="Nf4"/> in double precision, kept as the reference the tests compare against:
/// the nearest code by searching all 16 table values, no packing, no thresholds. Every F32 step of
/// <see cref="Nf4"/> is an F64 operation here followed by rounding to F32, which gives the same F32
/// (F64 has more than 2·24+2 bits, so that double rounding is innocuous for + − × ÷).
/// </summary>
internal static class Nf4Reference
{
    /// <summary>Codes (one per element), exact absmax per block, and dequantized values.</summary>
    public sealed record Result(byte[] Codes, float[] Absmax, double[] Dequantized, DoubleQuantState? DoubleQuant);

    /// <summary>Double-quantization state: int8 offsets, F32 per-group scales, F32 mean, and the absmax rebuilt from them.</summary>
    public sealed record DoubleQuantState(sbyte[] Quantized, float[] Scales, float Mean, float[] Absmax);

    public static Result Quantize(float[] x, bool doubleQuant)
    {
        const int blockSize = 64, groupSize = 256;
        int blocks = (x.Length + blockSize - 1) / blockSize;
        var codes = new byte[x.Length];
        var absmax = new float[blocks];
        for (int b = 0; b < blocks; b++)
        {
            int start = b * blockSize, end = Math.Min(x.Length, start + blockSize);
            double m = 0;
            for (int i = start; i < end; i++)
            {
                m = Math.Max(m, Math.Abs((double)x[i]));
            }

            absmax[b] = (float)m;
            for (int i = start; i < end; i++)
            {
                double v = m == 0 ? 0 : (float)(x[i] / m);
                codes[i] = (byte)Nearest(v);
            }
        }

        DoubleQuantState? state = null;
        float[] scaleOf = absmax;
        if (doubleQuant)
        {
            double sum = 0;
            for (int b = 0; b < blocks; b++)
            {
                sum += absmax[b];
            }

            float mean = blocks == 0 ? 0 : (float)(sum / blocks);
            int groups = (blocks + groupSize - 1) / groupSize;
            var scales = new float[groups];
            var q = new sbyte[blocks];
            var rebuilt = new float[blocks];
            for (int g = 0; g < groups; g++)
            {
                int first = g * groupSize, end = Math.Min(blocks, first + groupSize);
                double s = 0;
                for (int b = first; b < end; b++)
                {
                    s = Math.Max(s, Math.Abs((double)(float)((double)absmax[b] - mean)));
                }

                scales[g] = (float)s;
                for (int b = first; b < end; b++)
                {
                    double d = (float)((double)absmax[b] - mean);
                    q[b] = s == 0 ? (sbyte)0 : (sbyte)Math.Round(d / s * 127.0, MidpointRounding.ToEven);
                    double a = (float)((double)(float)((double)q[b] * s) / 127.0);
                    a = (float)(a + mean);
                    rebuilt[b] = (float)Math.Max(a, 0);
                }
            }

            state = new DoubleQuantState(q, scales, mean, rebuilt);
            scaleOf = rebuilt;
        }

        var dequantized = new double[x.Length];
        for (int i = 0; i < x.Length; i++)
        {
            dequantized[i] = (double)Nf4.Table[codes[i]] * scaleOf[i / blockSize];
        }

        return new Result(codes, absmax, dequantized, state);
    }

    /// <summary>Index of the table value nearest to <paramref name="v"/>; the first (lower) one on a tie.</summary>
    public static int Nearest(double v)
    {
        int best = 0;
        for (int c = 1; c < Nf4.Table.Length; c++)
        {
            if (Math.Abs(v - Nf4.Table[c]) < Math.Abs(v - Nf4.Table[best]))
            {
                best = c;
            }
        }

        return best;
    }
}
