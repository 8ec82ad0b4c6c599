using System.Numerics.Tensors;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>Embedding lookup and its gradient.</summary>
/// <remarks>
/// All ids are checked before anything is written. Reference twin: <see cref="EmbeddingReference"/>.
/// </remarks>
internal static unsafe class Embedding
{
    // Rows per thread below which a copy is too short (a 2048-float row is ~0.1 µs) to split.
    private const int MinRowsPerThread = 64;

    // Column block of the scatter: threads own disjoint columns, so duplicate ids never race and each
    // element sums its rows in index order whatever the thread count.
    private const int ColumnBlock = 256;

    /// <summary>ids (N), table (V,C) -> out (N,C). Throws naming the position and id when an id is outside [0, V).</summary>
    public static void Gather(int* ids, float* table, float* output, int n, int c, int v)
    {
        if (!Validate(ids, table, output, n, c, v))
        {
            return;
        }

        nint ip = (nint)ids, tp = (nint)table, op = (nint)output;
        CpuParallel.For(n, MinRowsPerThread, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                new ReadOnlySpan<float>((float*)tp + (long)((int*)ip)[i] * c, c).CopyTo(new Span<float>((float*)op + (long)i * c, c));
            }
        });
    }

    /// <summary>ids (N), table (V,C) as bf16 bits -> out (N,C) as F32.</summary>
    public static void Gather(int* ids, ushort* table, float* output, int n, int c, int v)
    {
        if (!Validate(ids, table, output, n, c, v))
        {
            return;
        }

        nint ip = (nint)ids, tp = (nint)table, op = (nint)output;
        CpuParallel.For(n, MinRowsPerThread, (start, end) =>
        {
            for (int i = start; i < end; i++)
            {
                ushort* src = (ushort*)tp + (long)((int*)ip)[i] * c;
                float* dst = (float*)op + (long)i * c;
                for (int j = 0; j < c; j++)
                {
                    dst[j] = Bf16.ToFloat(src[j]);
                }
            }
        });
    }

    /// <summary>dout (N,C) -> dtable (V,C) accumulated: dtable[ids[i]] += dout[i].</summary>
    public static void ScatterAdd(int* ids, float* dout, float* dtable, int n, int c, int v)
    {
        if (!Validate(ids, dout, dtable, n, c, v))
        {
            return;
        }

        nint ip = (nint)ids, dp = (nint)dout, tp = (nint)dtable;
        int blocks = (c + ColumnBlock - 1) / ColumnBlock;
        CpuParallel.For(blocks, 1, (startBlock, endBlock) =>
        {
            for (int blk = startBlock; blk < endBlock; blk++)
            {
                int c0 = blk * ColumnBlock;
                int width = Math.Min(ColumnBlock, c - c0);
                for (int i = 0; i < n; i++)
                {
                    var dst = new Span<float>((float*)tp + (long)((int*)ip)[i] * c + c0, width);
                    TensorPrimitives.Add(dst, new ReadOnlySpan<float>((float*)dp + (long)i * c + c0, width), dst);
                }
            }
        });
    }

    // Returns false when there is nothing to do.
    private static bool Validate(int* ids, void* table, float* other, int n, int c, int v)
    {
        if (n < 0 || c < 0 || v < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(n), $"Embedding: N, C and V must be non-negative; got N={n}, C={c}, V={v}.");
        }

        if (n == 0)
        {
            return false;
        }

        if (ids == null)
        {
            throw new ArgumentNullException(nameof(ids));
        }

        for (int i = 0; i < n; i++)
        {
            int id = ids[i];
            if ((uint)id >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(ids), id, $"Embedding: token id {id} at position {i} is outside the vocabulary [0, {v}); is the tokenizer from another model?");
            }
        }

        if (c == 0)
        {
            return false;
        }

        if (table == null || other == null)
        {
            throw new ArgumentNullException(table == null ? "table" : "output", "Embedding: a data pointer is null but N·C > 0.");
        }

        return true;
    }
}
