namespace Microsoft.ML.Lora.Text;

/// <summary>One symbol of a word being merged: a token id over units [Start, End), in a linked list.</summary>
internal struct BpeSymbol(int id, int start, int end)
{
    public int Id = id;
    public int Start = start;
    public int End = end;
    public int Prev;
    public int Next;
}

/// <summary>Per-thread buffers of the merger, grown on demand and reused (no allocation per word).</summary>
internal sealed class BpeScratch
{
    [ThreadStatic]
    private static BpeScratch? t_instance;

    public BpeSymbol[] Symbols = new BpeSymbol[256];
    public byte[] Bytes = new byte[1024];
    public long[] Heap = new long[3 * 256];

    /// <summary>The thread's scratch with room for <paramref name="units"/> symbols/bytes.</summary>
    public static BpeScratch Get(int units)
    {
        var s = t_instance ??= new BpeScratch();
        if (s.Symbols.Length < units)
        {
            int size = (int)Math.Min(Array.MaxLength, Math.Max(units, 2L * s.Symbols.Length));
            s.Symbols = new BpeSymbol[size];
            s.Heap = new long[Math.Min(Array.MaxLength, 3L * size)];
        }

        if (s.Bytes.Length < units)
        {
            s.Bytes = new byte[Math.Max(units, 2 * s.Bytes.Length)];
        }

        return s;
    }
}

/// <summary>
/// Applies merges to a word in rank order: a min-heap of candidate pairs keyed (rank, left position),
/// so the lowest-ranked pair merges first and ties go to the leftmost, as tokenizers' BPE does.
/// Heap entries are validated when popped (the pair may have changed since it was pushed).
/// O(n log n) per word, which matters for files without a pre-tokenizer where a word is a whole text.
/// </summary>
internal static class BpeMerger
{
    public static void MergeAll(BpeModel model, BpeSymbol[] symbols, int n, BpeScratch scratch)
    {
        for (int i = 0; i < n; i++)
        {
            symbols[i].Prev = i - 1;
            symbols[i].Next = i + 1 < n ? i + 1 : -1;
        }

        long[] heap = scratch.Heap;
        int count = 0;
        for (int i = 0; i + 1 < n; i++)
        {
            if (model.TryGetMerge(symbols[i].Id, symbols[i + 1].Id, out var m))
            {
                Push(heap, ref count, m.Rank, i);
            }
        }

        while (count > 0)
        {
            long top = Pop(heap, ref count);
            int rank = (int)(top >> 32);
            int left = (int)top;
            int right = symbols[left].Next;
            if (symbols[left].Id < 0 || right < 0
                || !model.TryGetMerge(symbols[left].Id, symbols[right].Id, out var m) || m.Rank != rank)
            {
                continue; // stale
            }

            symbols[left].Id = m.Id;
            symbols[left].End = symbols[right].End;
            int after = symbols[right].Next;
            symbols[left].Next = after;
            if (after >= 0)
            {
                symbols[after].Prev = left;
            }

            symbols[right].Id = -1;
            int before = symbols[left].Prev;
            if (before >= 0 && model.TryGetMerge(symbols[before].Id, m.Id, out var mb))
            {
                Push(heap, ref count, mb.Rank, before);
            }

            if (after >= 0 && model.TryGetMerge(m.Id, symbols[after].Id, out var ma))
            {
                Push(heap, ref count, ma.Rank, left);
            }
        }
    }

    // Entries (rank << 32 | position) compare as (rank, position). A word of n symbols pushes at most
    // n - 1 initial pairs plus 2 per merge (≤ n - 1 merges): under 3n, the scratch heap's size.
    private static void Push(long[] heap, ref int count, int rank, int position)
    {
        if (count == heap.Length)
        {
            throw new InvalidOperationException("BPE heap overflow");
        }

        long item = ((long)rank << 32) | (uint)position;
        int i = count++;
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            if (heap[parent] <= item)
            {
                break;
            }

            heap[i] = heap[parent];
            i = parent;
        }

        heap[i] = item;
    }

    private static long Pop(long[] heap, ref int count)
    {
        long top = heap[0];
        long last = heap[--count];
        int i = 0;
        while (true)
        {
            int child = (2 * i) + 1;
            if (child >= count)
            {
                break;
            }

            if (child + 1 < count && heap[child + 1] < heap[child])
            {
                child++;
            }

            if (heap[child] >= last)
            {
                break;
            }

            heap[i] = heap[child];
            i = child;
        }

        if (count > 0)
        {
            heap[i] = last;
        }

        return top;
    }
}
