namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Matrix multiply: C (M,N) = (accumulate ? C : 0) + op(A) · op(B), row-major with leading dimensions.
/// op(A) is A (M,K) or, with <c>transA</c>, Aᵀ where A is stored (K,M); op(B) is B (K,N) or, with
/// <c>transB</c>, Bᵀ where B is stored (N,K) — the layout of a Linear weight (OC,C).
/// The B operand may be F32 or BF16 (converted while packing), or an NF4 tensor (dequantized tile by
/// tile while packing; the whole F32 matrix never exists).
/// </summary>
/// <remarks>
/// Goto/BLIS structure: for each NC-column panel of B and each KC-deep slice, B is packed once, then
/// each MC-row block of A is packed, and each MR-row micro-panel of it is swept across the B panel by
/// an (MR,NR) register-tile micro-kernel (<see cref="GemmMicroKernels"/>, layouts in
/// <see cref="GemmPack"/>, blocking in <see cref="GemmConfig"/>). Threads split M or N at
/// tile boundaries and never K, and every C element is one fused multiply-add chain over k = 0..K-1
/// in order, so results are bit-identical for any <see cref="CpuParallel.Threads"/>.
/// </remarks>
internal static unsafe partial class Gemm
{
    // Below about this many flops per thread, a second thread costs more to wake than it saves.
    // Measured with the cut-off disabled, NT square-ish shapes, 1 vs 2 threads, best of 9:
    // 96×96×96 (1.8 MFLOP) 208 vs 173-177 GFLOP/s, 128×128×128 (4.2 MFLOP) 214 vs 229-271.
    private const long MinFlopsPerThread = 1L << 21;

    /// <summary>
    /// Forces the micro-kernel path of GEMMs called from the current thread, for tests
    /// (<see cref="GemmIsa.Auto"/>: the widest the CPU has).
    /// </summary>
    internal static GemmIsa ForceIsa
    {
        get => GemmIsaSelector.ForceIsa;
        set => GemmIsaSelector.ForceIsa = value;
    }

    /// <summary>F32 × F32.</summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate)
    {
        GemmValidation.Check(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        if (!TrySmallM(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, SmallMKind.F32, null))
        {
            Run<float, DensePackB<float, F32Element>>(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, nf4: null);
        }
    }

    /// <summary>F32 × BF16.</summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float* a, int lda, ushort* b, int ldb, float* c, int ldc, bool accumulate)
    {
        GemmValidation.Check(transA, transB, m, n, k, a, lda, b, ldb, c, ldc);
        if (!TrySmallM(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, SmallMKind.Bf16, null))
        {
            Run<ushort, DensePackB<ushort, Bf16Element>>(transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, nf4: null);
        }
    }

    /// <summary>
    /// F32 × a B tensor of any weight dtype (F32, BF16 or NF4), contiguous and 2-D: (N,K) with
    /// <paramref name="transB"/> — a Linear weight (OC,C) in x·Wᵀ — or (K,N) without, as in dy·W.
    /// NF4 is dequantized one micro-panel at a time while B is packed, never as a whole matrix.
    /// </summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float* a, int lda, Tensor b, float* c, int ldc, bool accumulate)
    {
        ArgumentNullException.ThrowIfNull(b);
        int rows = transB ? n : k, cols = transB ? k : n;
        if (b.Rank != 2 || b.Dim(0) != rows || b.Dim(1) != cols)
        {
            throw new ArgumentException(
                $"GEMM operand B {b} must be 2-D {(transB ? "(N,K)" : "(K,N)")} = ({rows},{cols}) for m={m}, n={n}, k={k}, transB={transB}", nameof(b));
        }

        switch (b.DType)
        {
            case DType.F32:
                Run(transA, transB, m, n, k, a, lda, b.F32Ptr, cols, c, ldc, accumulate);
                break;
            case DType.BF16:
                Run(transA, transB, m, n, k, a, lda, b.Bf16Ptr, cols, c, ldc, accumulate);
                break;
            default:
                GemmValidation.Check(transA, transB, m, n, k, a, lda, (byte*)b.Data, cols, c, ldc);
                if (!TrySmallM(transA, transB, m, n, k, a, lda, b.Data, cols, c, ldc, accumulate, SmallMKind.Nf4, b.Nf4Layout))
                {
                    Run<byte, Nf4PackB>(transA, transB, m, n, k, a, lda, (byte*)b.Data, cols, c, ldc, accumulate, b.Nf4Layout);
                }

                break;
        }
    }

    private static void Run<T, TPackB>(bool transA, bool transB, int m, int n, int k, float* a, int lda, T* b, int ldb, float* c, int ldc, bool accumulate, Nf4Layout? nf4)
        where T : unmanaged
        where TPackB : IGemmPackB<T>
    {
        // Callers validate the arguments (before the small-M check).
        if (m == 0 || n == 0)
        {
            return;
        }

        if (k == 0)
        {
            if (!accumulate)
            {
                for (int i = 0; i < m; i++)
                {
                    new Span<float>(c + ((long)i * ldc), n).Clear();
                }
            }

            return;
        }

        var job = new GemmJob<T>(GemmConfig.For(GemmIsaSelector.Current, n), transA, transB, m, n, k, a, lda, b, ldb, c, ldc, accumulate, nf4);
        int mr = job.Config.Mr, nr = job.Config.Nr;

        // Split the longer of M and N: each thread then packs all of the other operand, and the
        // shorter side is the cheaper one to pack twice.
        bool splitM = m >= n;
        int tiles = splitM ? (m + mr - 1) / mr : (n + nr - 1) / nr;
        long flopsPerTile = 2L * (splitM ? (long)mr * n : (long)nr * m) * k;
        int minTiles = (int)Math.Clamp((MinFlopsPerThread + flopsPerTile - 1) / flopsPerTile, 1, int.MaxValue);
        if (tiles < 2 * minTiles || CpuParallel.Threads == 1)
        {
            GemmDriver.Block<T, TPackB>(job, 0, m, 0, n);
            return;
        }

        RunParallel<T, TPackB>(job, splitM, tiles, minTiles);
    }

    // Separate from Run because the lambda's closure is allocated on entry to the method that declares
    // the captured variables: here it costs only calls that really fan out.
    private static void RunParallel<T, TPackB>(GemmJob<T> job, bool splitM, int tiles, int minTiles)
        where T : unmanaged
        where TPackB : IGemmPackB<T>
    {
        CpuParallel.For(tiles, minTiles, (first, end) =>
        {
            if (splitM)
            {
                GemmDriver.Block<T, TPackB>(job, first * job.Config.Mr, Math.Min(job.M, end * job.Config.Mr), 0, job.N);
            }
            else
            {
                GemmDriver.Block<T, TPackB>(job, 0, job.M, first * job.Config.Nr, Math.Min(job.N, end * job.Config.Nr));
            }
        });
    }
}
