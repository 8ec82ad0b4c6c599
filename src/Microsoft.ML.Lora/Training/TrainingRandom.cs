namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Stateless seeded randomness of a run: every draw is a function of (seed, purpose, counter), so a
/// resumed run needs no generator state beyond the counters it already stores, and no mask or
/// order depends on what ran before it.
/// </summary>
internal static class TrainingRandom
{
    // Purpose tags keep the streams of the data order, validation split and dropout independent.
    private const ulong ShuffleStream = 0x53485546464C45UL;
    private const ulong SplitStream = 0x53504C4954UL;
    private const ulong DropoutStream = 0x44524F504F5554UL;
    private const ulong SampleStream = 0x53414D504C45UL;
    private const ulong EvaluationSampleStream = 0x4556414C53414D50UL;

    // 2^64/φ, SplitMix64's increment.
    private const ulong Golden = 0x9E3779B97F4A7C15UL;

    /// <summary>
    /// SplitMix64's output function (Steele, Lea &amp; Flood 2014; the constants are those of
    /// Vigna's reference splitmix64.c): a bijective 64-bit mix with full avalanche.
    /// </summary>
    public static ulong Mix(ulong x) => Finalize(x + Golden);

    private static ulong Finalize(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9UL;
        x = (x ^ (x >> 27)) * 0x94D049BB133111EBUL;
        return x ^ (x >> 31);
    }

    /// <summary>Combines a seed, a purpose and a counter into one well-mixed key.</summary>
    public static ulong Key(int seed, ulong stream, ulong counter) => Mix(Mix(Mix((ulong)(uint)seed) ^ stream) ^ counter);

    /// <summary>The sampler seed of completion <paramref name="completion"/> of prompt <paramref name="prompt"/> at optimizer step <paramref name="step"/> (GRPO).</summary>
    public static int SampleSeed(int seed, int step, int prompt, int completion) =>
        (int)Key(seed, SampleStream, ((ulong)(uint)step << 32) ^ ((ulong)(uint)prompt << 12) ^ (uint)completion);

    /// <summary>The sampler seed of completion <paramref name="completion"/> of held-out prompt <paramref name="prompt"/> (GRPO's evaluation; the same at every evaluation of a run).</summary>
    public static int EvaluationSampleSeed(int seed, int prompt, int completion) =>
        (int)Key(seed, EvaluationSampleStream, ((ulong)(uint)prompt << 12) ^ (uint)completion);

    /// <summary><see cref="Models.LlamaForCausalLM.DropoutSeed"/> for global micro-step <paramref name="microStep"/>.</summary>
    public static ulong DropoutSeed(int seed, long microStep) => Key(seed, DropoutStream, (ulong)microStep);

    /// <summary>Row order of <paramref name="epoch"/>: a seeded Fisher–Yates permutation of 0…n−1.</summary>
    public static int[] EpochOrder(int n, int seed, int epoch, bool shuffle)
    {
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
        }

        if (shuffle)
        {
            Permute(order, Key(seed, ShuffleStream, (ulong)epoch));
        }

        return order;
    }

    /// <summary>A seeded permutation of 0…n−1 that chooses the validation rows.</summary>
    public static int[] SplitOrder(int n, int seed)
    {
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            order[i] = i;
        }

        Permute(order, Key(seed, SplitStream, 0));
        return order;
    }

    /// <summary>Fisher–Yates over a SplitMix64 stream; bounded draws by Lemire's multiply-and-reject, so unbiased.</summary>
    private static void Permute(int[] items, ulong state)
    {
        for (int i = items.Length - 1; i > 0; i--)
        {
            int j = (int)Below(ref state, (ulong)(i + 1));
            (items[i], items[j]) = (items[j], items[i]);
        }
    }

    private static ulong Below(ref ulong state, ulong bound)
    {
        // Lemire, "Fast Random Integer Generation in an Interval" (2019): reject the low products that
        // would make some results more likely.
        ulong threshold = (0 - bound) % bound;
        while (true)
        {
            state += Golden;
            ulong x = Finalize(state);
            UInt128 product = (UInt128)x * bound;
            if ((ulong)product >= threshold)
            {
                return (ulong)(product >> 64);
            }
        }
    }
}
