using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// The few-row case of x·Wᵀ (M ≤ 4, B stored (N,K)): generation's one token per step. Packing B
/// would copy the whole weight per call for a handful of rows, so each output is a dot product over a
/// contiguous weight row instead, read once for all M rows. Every C element is one fixed-order chain
/// (4 vector accumulators, then a fixed reduction), so results do not depend on the thread count, and
/// BF16 and NF4 rows are widened/decoded to F32 first so that they give the bits of F32 on the
/// converted weight, as the packed path does. KV-cache generation on the bench model went from 70.9
/// to 105 tokens/s (F32) with this path.
/// </summary>
internal static unsafe partial class Gemm
{
    private const int SmallM = 4;

    // Rows of B per thread below which a second thread is not worth waking (512-wide rows: ~64 KiB).
    private const int MinSmallMRowsPerThread = 32;

    private enum SmallMKind
    {
        F32,
        Bf16,
        Nf4,
    }

    private static bool TrySmallM(bool transA, bool transB, int m, int n, int k, float* a, int lda, void* b, int ldb, float* c, int ldc, bool accumulate, SmallMKind kind, Nf4Layout? nf4)
    {
        if (transA || !transB || m > SmallM || m == 0 || n == 0 || k < 16 || GemmIsaSelector.Current != GemmIsa.Avx512)
        {
            return false;
        }

        var job = new SmallMJob((nint)a, lda, (nint)b, ldb, (nint)c, ldc, m, k, accumulate, kind, nf4);
        if (CpuParallel.Threads == 1 || n < 2 * MinSmallMRowsPerThread)
        {
            job.Rows(0, n);
        }
        else
        {
            // A separate method: the closure is allocated only when the work really fans out.
            RunSmallMParallel(job, n);
        }

        return true;
    }

    private static void RunSmallMParallel(SmallMJob job, int n) => CpuParallel.For(n, MinSmallMRowsPerThread, job.Rows);

    private sealed class SmallMJob(nint a, int lda, nint b, int ldb, nint c, int ldc, int m, int k, bool accumulate, SmallMKind kind, Nf4Layout? nf4)
    {
        public void Rows(int start, int end)
        {
            nuint bytes = (nuint)(((k + 15) & ~15) * sizeof(float));
            float* row = kind == SmallMKind.F32 ? null : (float*)NativePool.Rent(bytes);
            try
            {
                for (int j = start; j < end; j++)
                {
                    float* w = kind switch
                    {
                        SmallMKind.F32 => (float*)b + ((long)j * ldb),
                        SmallMKind.Bf16 => Widen((ushort*)b + ((long)j * ldb), row, k),
                        _ => Decode(j, row),
                    };
                    for (int i = 0; i < m; i++)
                    {
                        float dot = Dot((float*)a + ((long)i * lda), w, k);
                        float* dst = (float*)c + ((long)i * ldc) + j;
                        *dst = accumulate ? *dst + dot : dot;
                    }
                }
            }
            finally
            {
                if (row != null)
                {
                    NativePool.Return(row, bytes);
                }
            }
        }

        private float* Decode(int j, float* row)
        {
            Nf4Decode.Run(nf4!, (byte*)b, (long)j * k, k, row, GemmIsa.Avx512);
            return row;
        }
    }

    private static float Dot(float* x, float* w, int k)
    {
        var s0 = Vector512<float>.Zero;
        var s1 = Vector512<float>.Zero;
        var s2 = Vector512<float>.Zero;
        var s3 = Vector512<float>.Zero;
        int p = 0;
        for (; p <= k - 64; p += 64)
        {
            s0 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(w + p), s0);
            s1 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + p + 16), Vector512.Load(w + p + 16), s1);
            s2 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + p + 32), Vector512.Load(w + p + 32), s2);
            s3 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + p + 48), Vector512.Load(w + p + 48), s3);
        }

        for (; p <= k - 16; p += 16)
        {
            s0 = Avx512F.FusedMultiplyAdd(Vector512.Load(x + p), Vector512.Load(w + p), s0);
        }

        float sum = Vector512.Sum((s0 + s1) + (s2 + s3));
        for (; p < k; p++)
        {
            sum = MathF.FusedMultiplyAdd(x[p], w[p], sum);
        }

        return sum;
    }

    // bf16 → f32 is exact (the bits move into the high half), 16 at a time, then the scalar tail.
    private static float* Widen(ushort* w, float* row, int k)
    {
        int p = 0;
        for (; p <= k - 16; p += 16)
        {
            Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512UInt32(Vector256.Load(w + p)), 16).AsSingle().Store(row + p);
        }

        for (; p < k; p++)
        {
            row[p] = Bf16.ToFloat(w[p]);
        }

        return row;
    }
}
