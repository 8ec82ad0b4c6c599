using System.Numerics.Tensors;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>SwiGLU gating of the Llama MLP: h = silu(gate) · up.</summary>
/// <remarks>
/// Works in fixed chunks of <see cref="Chunk"/> elements through stack scratch, so any output may alias
/// any input exactly, and chunk boundaries (hence every bit) do not depend on the thread count.
/// Reference twin: <see cref="SwiGluReference"/>.
/// </remarks>
internal static unsafe class SwiGlu
{
    // 1024 floats = 4 KiB per scratch buffer: L1-resident, and ~1 µs of work per chunk.
    private const int Chunk = 1024;

    // Chunks per thread below which the hand-off to a second thread costs more than it saves.
    private const int MinChunksPerThread = 8;

    /// <summary>gate (N), up (N) -> h (N).</summary>
    public static void Forward(float* gate, float* up, float* h, long n)
    {
        int chunks = ChunkCount(n);
        if (chunks == 0)
        {
            return;
        }

        RequireNotNull(gate, nameof(gate));
        RequireNotNull(up, nameof(up));
        RequireNotNull(h, nameof(h));
        nint gp = (nint)gate, upp = (nint)up, hp = (nint)h;
        CpuParallel.For(chunks, MinChunksPerThread, (start, end) =>
        {
            Span<float> act = stackalloc float[Chunk];
            for (int k = start; k < end; k++)
            {
                long off = (long)k * Chunk;
                int len = (int)Math.Min(Chunk, n - off);
                var g = new ReadOnlySpan<float>((float*)gp + off, len);
                var a = act[..len];

                // silu(g) = g · sigmoid(g), then · up (Hugging Face's act_fn(gate_proj(x)) * up_proj(x)).
                TensorPrimitives.Sigmoid(g, a);
                TensorPrimitives.Multiply(a, g, a);
                TensorPrimitives.Multiply(a, new ReadOnlySpan<float>((float*)upp + off, len), new Span<float>((float*)hp + off, len));
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

        RequireNotNull(dh, nameof(dh));
        RequireNotNull(gate, nameof(gate));
        RequireNotNull(up, nameof(up));
        RequireNotNull(dgate, nameof(dgate));
        RequireNotNull(dup, nameof(dup));
        nint dhp = (nint)dh, gp = (nint)gate, upp = (nint)up, dgp = (nint)dgate, dup2 = (nint)dup;
        CpuParallel.For(chunks, MinChunksPerThread, (start, end) =>
        {
            Span<float> sigBuf = stackalloc float[Chunk];
            Span<float> siluBuf = stackalloc float[Chunk];
            Span<float> dgBuf = stackalloc float[Chunk];
            for (int k = start; k < end; k++)
            {
                long off = (long)k * Chunk;
                int len = (int)Math.Min(Chunk, n - off);
                var d = new ReadOnlySpan<float>((float*)dhp + off, len);
                var g = new ReadOnlySpan<float>((float*)gp + off, len);
                var u = new ReadOnlySpan<float>((float*)upp + off, len);
                var sig = sigBuf[..len];
                var silu = siluBuf[..len];
                var dg = dgBuf[..len];

                TensorPrimitives.Sigmoid(g, sig);
                TensorPrimitives.Multiply(g, sig, silu);

                // silu'(g) = σ + g·σ·(1 − σ) = σ + silu·(1 − σ).
                TensorPrimitives.Subtract(1f, sig, dg);
                TensorPrimitives.Multiply(dg, silu, dg);
                TensorPrimitives.Add(dg, sig, dg);
                TensorPrimitives.Multiply(dg, u, dg);
                TensorPrimitives.Multiply(dg, d, dg);

                // All inputs of this chunk are read; now the outputs may overwrite any of them.
                TensorPrimitives.Multiply(silu, d, new Span<float>((float*)dup2 + off, len));
                dg.CopyTo(new Span<float>((float*)dgp + off, len));
            }
        });
    }

    private static int ChunkCount(long n)
    {
        if (n < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(n), n, "SwiGlu: element count N must be non-negative.");
        }

        long chunks = (n + Chunk - 1) / Chunk;
        return chunks <= int.MaxValue ? (int)chunks : throw new ArgumentOutOfRangeException(nameof(n), n, "SwiGlu: element count is too large.");
    }

    private static void RequireNotNull(float* p, string name)
    {
        if (p == null)
        {
            throw new ArgumentNullException(name, $"SwiGlu: '{name}' is null but N > 0.");
        }
    }
}
