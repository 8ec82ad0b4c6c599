using System.Numerics.Tensors;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// GeGLU gating of the Gemma MLP: h = gelu_tanh(gate) · up, with PyTorch's tanh approximation
/// gelu_tanh(g) = ½·g·(1 + tanh(√(2/π)·(g + 0.044715·g³))) (<c>gelu_pytorch_tanh</c>).
/// </summary>
/// <remarks>
/// Fixed chunks through stack scratch, as <see cref="SwiGlu"/>: outputs may alias inputs, and results do not
/// depend on the thread count.
/// </remarks>
internal static unsafe class GeGlu
{
    private const int Chunk = 1024;
    private const int MinChunksPerThread = 8;
    private const float Cubic = 0.044715f;

    // √(2/π), rounded once.
    private static readonly float Root2OverPi = (float)Math.Sqrt(2 / Math.PI);

    /// <summary>gate (N), up (N) -> h (N).</summary>
    public static void Forward(float* gate, float* up, float* h, long n)
    {
        int chunks = ChunkCount(n);
        if (chunks == 0)
        {
            return;
        }

        nint gp = (nint)gate, upp = (nint)up, hp = (nint)h;
        CpuParallel.For(chunks, MinChunksPerThread, (start, end) =>
        {
            Span<float> tBuf = stackalloc float[Chunk];
            for (int k = start; k < end; k++)
            {
                long off = (long)k * Chunk;
                int len = (int)Math.Min(Chunk, n - off);
                var g = new ReadOnlySpan<float>((float*)gp + off, len);
                var t = tBuf[..len];
                TanhArgument(g, t);
                TensorPrimitives.Tanh(t, t);

                // ½·g·(1 + t)·up
                TensorPrimitives.Add(t, 1f, t);
                TensorPrimitives.Multiply(t, g, t);
                TensorPrimitives.Multiply(t, 0.5f, t);
                TensorPrimitives.Multiply(t, new ReadOnlySpan<float>((float*)upp + off, len), new Span<float>((float*)hp + off, len));
            }
        });
    }

    /// <summary>dh (N) -> dgate (N), dup (N), both overwritten.</summary>
    public static void Backward(float* dh, float* gate, float* up, float* dgate, float* dup, long n)
    {
        int chunks = ChunkCount(n);
        if (chunks == 0)
        {
            return;
        }

        nint dhp = (nint)dh, gp = (nint)gate, upp = (nint)up, dgp = (nint)dgate, dupp = (nint)dup;
        CpuParallel.For(chunks, MinChunksPerThread, (start, end) =>
        {
            Span<float> tBuf = stackalloc float[Chunk];
            Span<float> geluBuf = stackalloc float[Chunk];
            Span<float> dgBuf = stackalloc float[Chunk];
            Span<float> sBuf = stackalloc float[Chunk];
            for (int k = start; k < end; k++)
            {
                long off = (long)k * Chunk;
                int len = (int)Math.Min(Chunk, n - off);
                var d = new ReadOnlySpan<float>((float*)dhp + off, len);
                var g = new ReadOnlySpan<float>((float*)gp + off, len);
                var u = new ReadOnlySpan<float>((float*)upp + off, len);
                var t = tBuf[..len];
                var gelu = geluBuf[..len];
                var dg = dgBuf[..len];
                var sc = sBuf[..len];
                TanhArgument(g, t);
                TensorPrimitives.Tanh(t, t);

                // gelu = ½·g·(1 + t)
                TensorPrimitives.Add(t, 1f, gelu);
                TensorPrimitives.Multiply(gelu, g, gelu);
                TensorPrimitives.Multiply(gelu, 0.5f, gelu);

                // gelu'(g) = ½·g·√(2/π)·(1 + 3·0.044715·g²)·(1 − t²) + ½·(1 + t)
                TensorPrimitives.Multiply(g, g, dg);
                TensorPrimitives.Multiply(dg, 3 * Cubic, dg);
                TensorPrimitives.Add(dg, 1f, dg);
                TensorPrimitives.Multiply(dg, Root2OverPi, dg);
                TensorPrimitives.Multiply(dg, g, dg);
                TensorPrimitives.Multiply(t, t, sc);
                TensorPrimitives.Subtract(1f, sc, sc);
                TensorPrimitives.Multiply(dg, sc, dg);
                TensorPrimitives.Multiply(dg, 0.5f, dg);
                TensorPrimitives.Add(t, 1f, sc);
                TensorPrimitives.Multiply(sc, 0.5f, sc);
                TensorPrimitives.Add(dg, sc, dg);
                TensorPrimitives.Multiply(dg, u, dg);
                TensorPrimitives.Multiply(dg, d, dg);

                // All inputs of this chunk are read; the outputs may overwrite any of them now.
                TensorPrimitives.Multiply(gelu, d, new Span<float>((float*)dupp + off, len));
                dg.CopyTo(new Span<float>((float*)dgp + off, len));
            }
        });
    }

    // t = √(2/π)·(g + 0.044715·g³)
    private static void TanhArgument(ReadOnlySpan<float> g, Span<float> t)
    {
        TensorPrimitives.Multiply(g, g, t);
        TensorPrimitives.Multiply(t, Cubic, t);
        TensorPrimitives.Add(t, 1f, t);
        TensorPrimitives.Multiply(t, g, t);
        TensorPrimitives.Multiply(t, Root2OverPi, t);
    }

    private static int ChunkCount(long n)
    {
        if (n < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(n), n, "GeGlu: element count N must be non-negative.");
        }

        long chunks = (n + Chunk - 1) / Chunk;
        return chunks <= int.MaxValue ? (int)chunks : throw new ArgumentOutOfRangeException(nameof(n), n, "GeGlu: element count is too large.");
    }
}
