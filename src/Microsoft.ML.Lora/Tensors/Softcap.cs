using System.Numerics.Tensors;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>Logit soft-capping (Gemma 2): x → cap·tanh(x/cap), and its gradient 1 − (y/cap)² from the capped y.</summary>
internal static unsafe class Softcap
{
    private const int Chunk = 1 << 16;

    /// <summary>x (N) capped in place.</summary>
    public static void Forward(float* x, long n, float cap)
    {
        Check(cap);
        for (long off = 0; off < n; off += Chunk)
        {
            Apply(new Span<float>(x + off, (int)Math.Min(Chunk, n - off)), cap);
        }
    }

    /// <summary>values → cap·tanh(values/cap), in place (also the attention kernels' score capping).</summary>
    public static void Apply(Span<float> values, float cap)
    {
        TensorPrimitives.Multiply(values, 1f / cap, values);
        TensorPrimitives.Tanh(values, values);
        TensorPrimitives.Multiply(values, cap, values);
    }

    /// <summary>dy (N) ← dy·(1 − (y/cap)²) in place; y (N) the capped values.</summary>
    public static void Backward(float* dy, float* y, long n, float cap)
    {
        Check(cap);
        float[] scratch = new float[(int)Math.Min(Chunk, Math.Max(n, 1))];
        for (long off = 0; off < n; off += Chunk)
        {
            int len = (int)Math.Min(Chunk, n - off);
            var t = scratch.AsSpan(0, len);
            TensorPrimitives.Multiply(new ReadOnlySpan<float>(y + off, len), 1f / cap, t);
            TensorPrimitives.Multiply(t, t, t);
            TensorPrimitives.Subtract(1f, t, t);
            var d = new Span<float>(dy + off, len);
            TensorPrimitives.Multiply(d, t, d);
        }
    }

    private static void Check(float cap)
    {
        if (!(cap > 0) || float.IsInfinity(cap))
        {
            throw new ArgumentOutOfRangeException(nameof(cap), cap, "Softcap: the cap must be a positive finite number.");
        }
    }
}
