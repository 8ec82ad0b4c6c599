using System.Collections.Concurrent;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// 64-byte aligned native memory, recycled by exact byte size. A training step allocates the same
/// activation sizes every step, so exact-size buckets hit after the first step and the GC never sees
/// the buffers.
/// </summary>
public static unsafe class NativePool
{
    /// <summary>Alignment of every block: one cache line, and one AVX-512 vector.</summary>
    public const int Alignment = 64;

    private static readonly ConcurrentDictionary<nuint, ConcurrentBag<nint>> Free = new();
    private static long cachedBytes;
    private static long liveBytes;
    private static long peakLiveBytes;

    /// <summary>Bytes currently handed out and not yet returned.</summary>
    public static long LiveBytes => Interlocked.Read(ref liveBytes);

    /// <summary>Highest <see cref="LiveBytes"/> since the last <see cref="ResetPeak"/>: the memory high-water mark of tensors.</summary>
    public static long PeakLiveBytes => Interlocked.Read(ref peakLiveBytes);

    /// <summary>Starts a new high-water mark at the current live bytes.</summary>
    public static void ResetPeak() => Interlocked.Exchange(ref peakLiveBytes, LiveBytes);

    /// <summary>Bytes held in the pool for reuse.</summary>
    public static long CachedBytes => Interlocked.Read(ref cachedBytes);

    /// <summary>Rents a block of at least <paramref name="bytes"/> bytes (contents undefined).</summary>
    public static void* Rent(nuint bytes)
    {
        nuint size = RoundUp(bytes);
        long live = Interlocked.Add(ref liveBytes, (long)size);
        for (long peak = Interlocked.Read(ref peakLiveBytes); live > peak; peak = Interlocked.Read(ref peakLiveBytes))
        {
            if (Interlocked.CompareExchange(ref peakLiveBytes, live, peak) == peak)
            {
                break;
            }
        }

        if (Free.TryGetValue(size, out var bag) && bag.TryTake(out nint block))
        {
            Interlocked.Add(ref cachedBytes, -(long)size);
            return (void*)block;
        }

        return NativeMemory.AlignedAlloc(size, Alignment);
    }

    /// <summary>Returns a block rented with the same <paramref name="bytes"/>.</summary>
    public static void Return(void* block, nuint bytes)
    {
        nuint size = RoundUp(bytes);
        Interlocked.Add(ref liveBytes, -(long)size);
        Interlocked.Add(ref cachedBytes, (long)size);
        Free.GetOrAdd(size, static _ => new ConcurrentBag<nint>()).Add((nint)block);
    }

    /// <summary>Frees every cached block back to the operating system.</summary>
    public static void Trim()
    {
        foreach (var bag in Free.Values)
        {
            while (bag.TryTake(out nint block))
            {
                NativeMemory.AlignedFree((void*)block);
            }
        }

        Interlocked.Exchange(ref cachedBytes, 0);
    }

    // Zero-byte tensors still get a distinct, valid pointer.
    private static nuint RoundUp(nuint bytes) => bytes == 0 ? Alignment : (bytes + (Alignment - 1)) & ~(nuint)(Alignment - 1);
}
