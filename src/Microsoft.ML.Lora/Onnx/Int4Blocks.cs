namespace Microsoft.ML.Lora.Onnx;

/// <summary>
/// Weights in ONNX Runtime's <c>MatMulNBits</c> layout (domain com.microsoft, bits = 4): W (N,K) is cut
/// into blocks of 32 or 64 along K (zero-padded), each stored as one F32 scale and
/// blockSize/2 bytes of 4-bit codes, two per byte with the lower-index element in the low nibble. No
/// zero-point input, so ONNX Runtime uses 8: w = (q − 8)·scale. The quantization is symmetric:
/// scale = absmax/7 and q = clamp(round(w/scale) + 8, 0, 15), so every block's extreme is exact.
/// </summary>
public static class Int4Blocks
{
    /// <summary>The default elements per block.</summary>
    public const int DefaultBlockSize = 32;

    /// <summary>Quantizes W (N,K): codes (N, blocks, blockSize/2), scales (N·blocks), and the dequantized W the graph computes with.</summary>
    public static (byte[] Codes, float[] Scales, float[] Dequantized) Quantize(float[] w, int n, int k, int blockSize = DefaultBlockSize)
    {
        if (blockSize is not (32 or 64))
        {
            throw new ArgumentOutOfRangeException(nameof(blockSize), blockSize, "int4 block size must be 32 or 64");
        }

        int blocks = (k + blockSize - 1) / blockSize, blob = blockSize / 2;
        var codes = new byte[(long)n * blocks * blob];
        var scales = new float[(long)n * blocks];
        var dequantized = new float[w.Length];
        for (int row = 0; row < n; row++)
        {
            for (int blk = 0; blk < blocks; blk++)
            {
                int start = blk * blockSize, end = Math.Min(k, start + blockSize);
                float absmax = 0;
                for (int i = start; i < end; i++)
                {
                    absmax = Math.Max(absmax, Math.Abs(w[((long)row * k) + i]));
                }

                float scale = absmax / 7f;
                scales[((long)row * blocks) + blk] = scale;
                for (int i = start; i < start + blockSize; i++)
                {
                    int q = 8;
                    if (i < end && scale > 0)
                    {
                        q = Math.Clamp((int)MathF.Round(w[((long)row * k) + i] / scale, MidpointRounding.ToEven) + 8, 0, 15);
                        dequantized[((long)row * k) + i] = (q - 8) * scale;
                    }

                    long byteIndex = ((((long)row * blocks) + blk) * blob) + ((i - start) / 2);
                    codes[byteIndex] |= (byte)(((i - start) & 1) == 0 ? q : q << 4);
                }
            }
        }

        return (codes, scales, dequantized);
    }
}
