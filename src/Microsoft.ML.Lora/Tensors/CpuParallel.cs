namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Static partitioning of work over a fixed number of threads. Each index is always handled by one
/// thread in a fixed order, so results do not depend on scheduling (bit-reproducible for a fixed
/// <see cref="Threads"/>). Applications set the count through <see cref="Backend.Threads"/> of <see cref="Backend.Native"/>.
/// </summary>
internal static class CpuParallel
{
    /// <summary>The most threads a kernel may be split over.</summary>
    public const int MaxThreads = 4096;

    private static int threads = Math.Min(Environment.ProcessorCount, MaxThreads);

    /// <summary>Threads used by CPU kernels; defaults to the processor count.</summary>
    public static int Threads
    {
        get => threads;
        set => threads = value is >= 1 and <= MaxThreads ? value : throw new ArgumentOutOfRangeException(nameof(Threads), value, $"threads must be 1 … {MaxThreads}");
    }

    /// <summary>
    /// Runs <paramref name="body"/>(start, end) over contiguous chunks of [0, <paramref name="count"/>),
    /// one chunk per thread, on the calling thread alone when the work is small.
    /// </summary>
    /// <param name="count">Number of items.</param>
    /// <param name="minItemsPerThread">Below this many items per thread, fewer threads are used.</param>
    /// <param name="body">Processes items [start, end).</param>
    public static void For(int count, int minItemsPerThread, Action<int, int> body)
    {
        if (count <= 0)
        {
            return;
        }

        int parts = Math.Min(threads, Math.Max(1, count / Math.Max(1, minItemsPerThread)));
        if (parts == 1)
        {
            body(0, count);
            return;
        }

        Parallel.For(0, parts, new ParallelOptions { MaxDegreeOfParallelism = parts }, p =>
        {
            int start = (int)((long)count * p / parts);
            int end = (int)((long)count * (p + 1) / parts);
            body(start, end);
        });
    }
}
