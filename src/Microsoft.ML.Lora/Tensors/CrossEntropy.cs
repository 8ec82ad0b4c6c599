using System.Numerics.Tensors;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>Fused softmax + cross-entropy over the vocabulary, with ignored targets.</summary>
/// <remarks>
/// Per row: m = max(logits), lse = m + log Σ exp(logit − m), loss = lse − logit[target]. The sum runs
/// over fixed chunks in the same order whether or not gradients are written, so the loss has the same
/// bits in both modes, and rows are independent, so any thread count gives the same bits.
/// Reference twin: <see cref="CrossEntropyReference"/>.
/// </remarks>
public static unsafe class CrossEntropy
{
    /// <summary>Target value whose row contributes no loss and no gradient (PyTorch's default ignore_index).</summary>
    public const int IgnoreIndex = -100;

    // Exp scratch when no gradient is written: 4 KiB, L1-resident.
    private const int Chunk = 1024;

    // One row of a 32k vocabulary is ~10 µs; two rows per thread already pay for the hand-off.
    private const int MinRowsPerThread = 2;

    /// <summary>
    /// logits (N,V), targets (N) -> losses (N) (0 where ignored); returns the number of rows not ignored.
    /// When <paramref name="dlogits"/> is not null, writes (softmax − onehot) · <paramref name="gradScale"/>
    /// into it (0 for ignored rows); it may alias <paramref name="logits"/>.
    /// </summary>
    internal static int ForwardBackward(float* logits, int* targets, float* losses, float* dlogits, int n, int v, float gradScale)
    {
        if (n < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(n), n, "CrossEntropy: row count N must be non-negative.");
        }

        if (v <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(v), v, "CrossEntropy: vocabulary size V must be positive.");
        }

        if (n == 0)
        {
            return 0;
        }

        if (logits == null || targets == null || losses == null)
        {
            throw new ArgumentNullException(logits == null ? nameof(logits) : targets == null ? nameof(targets) : nameof(losses));
        }

        long span = (long)n * v;
        if (dlogits != null && dlogits != logits && dlogits < logits + span && logits < dlogits + span)
        {
            throw new ArgumentException("CrossEntropy: dlogits partially overlaps logits; it must be the same buffer or a disjoint one.", nameof(dlogits));
        }

        // Check every target before writing anything.
        int counted = 0;
        for (int i = 0; i < n; i++)
        {
            int target = targets[i];
            if (target == IgnoreIndex)
            {
                continue;
            }

            if ((uint)target >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(targets), target, $"CrossEntropy: target {target} in row {i} is outside [0, {v}) and is not the ignore index {IgnoreIndex}.");
            }

            counted++;
        }

        nint lp = (nint)logits, tp = (nint)targets, lossp = (nint)losses, dp = (nint)dlogits;
        CpuParallel.For(n, MinRowsPerThread, (start, end) =>
        {
            Span<float> scratch = stackalloc float[Chunk];
            for (int i = start; i < end; i++)
            {
                Row((float*)lp + (long)i * v, ((int*)tp)[i], (float*)lossp + i, dp == 0 ? null : (float*)dp + (long)i * v, v, gradScale, scratch);
            }
        });

        return counted;
    }

    private static void Row(float* logits, int target, float* loss, float* dlogits, int v, float gradScale, Span<float> scratch)
    {
        if (target == IgnoreIndex)
        {
            *loss = 0f;
            if (dlogits != null)
            {
                new Span<float>(dlogits, v).Clear();
            }

            return;
        }

        // Read before dlogits (possibly the same buffer) is written.
        float targetLogit = logits[target];
        float max = TensorPrimitives.Max(new ReadOnlySpan<float>(logits, v));

        // Σ exp in float chunks, chunk sums added in double: the chunk order is fixed, and double keeps the
        // total of up to ~10⁵ terms accurate to float precision.
        double sum = 0;
        for (int c0 = 0; c0 < v; c0 += Chunk)
        {
            int len = Math.Min(Chunk, v - c0);
            var src = new ReadOnlySpan<float>(logits + c0, len);
            Span<float> e = dlogits != null ? new Span<float>(dlogits + c0, len) : scratch[..len];
            TensorPrimitives.Subtract(src, max, e);
            TensorPrimitives.Exp(e, e);
            sum += TensorPrimitives.Sum<float>(e);
        }

        // (max − target) first: both are logits of similar size, so the difference is exact-ish.
        *loss = (float)((double)max - targetLogit + Math.Log(sum));

        if (dlogits != null)
        {
            var d = new Span<float>(dlogits, v);
            TensorPrimitives.Multiply(d, (float)(gradScale / sum), d);
            d[target] -= gradScale;
        }
    }
}
