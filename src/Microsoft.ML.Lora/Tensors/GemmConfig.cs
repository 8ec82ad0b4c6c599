namespace Microsoft.ML.Lora.Tensors;

/// <summary>Cache blocking of the GEMM loops, in elements: MC rows of A, KC depth, NC columns of B.</summary>
internal readonly record struct GemmBlocking(int Mc, int Kc, int Nc);

/// <summary>A micro-kernel with its register tile (MR,NR) and the cache blocking measured for it.</summary>
internal sealed unsafe class GemmConfig
{
    [ThreadStatic]
    private static GemmBlocking? blockingOverride;

    private GemmConfig(GemmIsa isa, int mr, int nr, GemmBlocking blocking, delegate*<int, float*, float*, float*, nint, bool, void> tile)
    {
        Isa = isa;
        Mr = mr;
        Nr = nr;
        Blocking = blocking;
        Tile = tile;
    }

    // Loop order (GemmDriver): one packed A micro-panel (KC,MR) stays in L1 while the kernel walks
    // every NR-column micro-panel of the packed B panel (KC,NC), which streams from L2/L3.
    // Measured on the 2-core Zen 5 (48 KiB L1d, 1 MiB L2 per core, 32 MiB L3), one thread, best of 9,
    // bare 12×32 kernel on L1-resident panels = 251 GFLOP/s:
    // - this order beat the BLIS order (B micro-panel in L1, A block in L2) on the large-N shapes,
    //   222 vs 196-206 GFLOP/s on lm_head (1024,8192,512) NT and square 2048, equal elsewhere: with
    //   NC·KC past L2 the B panel streaming through L2 evicted the A block.
    // - KC 128/256/384/512 within noise (±3%); KC=256 keeps the A micro-panel at 12 KiB of L1 and
    //   reloads C once per 256 k.
    // - NC 512 beat 1024/2048/4096 by 3-5% on gate/up and lm_head (230-234 vs 222-225 GFLOP/s), equal
    //   on square 2048: the 512 KiB B panel (KC·NC·4) stays in the 1 MiB L2, and re-packing A once per
    //   panel costs less than streaming B from L3. With 2 threads all four were within noise.
    // - MC 96/192/480/1020 within noise; 480 was never worse. In this order MC only sizes the A buffer
    //   (480·256·4 = 480 KiB per thread).
    public static GemmConfig Avx512 { get; } = new(GemmIsa.Avx512, 12, 32, new GemmBlocking(480, 256, 512), &GemmMicroKernels.Avx512Tile12x32);

    // For C at most 16 wide, where the 32-wide tile would compute zeros for half or more of its columns.
    // Measured, 2 threads, best of 7, 12×32 → 12×16: (1024,16,512) NT 146 → 220-230 GFLOP/s, NN 136-154
    // → 223-236, (512,16,1024) TN 98-111 → 144-174, (1024,8,512) NT 77-79 → 112-113.
    public static GemmConfig Avx512Narrow { get; } = new(GemmIsa.Avx512, 12, 16, Avx512.Blocking, &GemmMicroKernels.Avx512Tile12x16);

    // AVX2 and scalar reuse the AVX-512 blocking's reasoning (A micro-panel in L1, B panel in L2);
    // not separately tuned: on this machine they are test paths only.
    public static GemmConfig Avx2 { get; } = new(GemmIsa.Avx2, 6, 16, new GemmBlocking(480, 256, 512), &GemmMicroKernels.Avx2Tile6x16);

    public static GemmConfig Scalar { get; } = new(GemmIsa.Scalar, 4, 4, new GemmBlocking(480, 256, 512), &GemmMicroKernels.ScalarTile4x4);

    /// <summary>
    /// Overrides the blocking for GEMMs called from the current thread (null: measured defaults); for
    /// tests that reach multi-block paths with small matrices, and the benchmark's tuning sweep.
    /// Thread-static like <see cref="GemmIsaSelector.ForceIsa"/>; blocking never changes results.
    /// </summary>
    internal static GemmBlocking? BlockingOverride
    {
        get => blockingOverride;
        set => blockingOverride = value;
    }

    public GemmIsa Isa { get; }

    /// <summary>Rows of the register tile.</summary>
    public int Mr { get; }

    /// <summary>Columns of the register tile.</summary>
    public int Nr { get; }

    public GemmBlocking Blocking { get; }

    /// <summary>C (Mr,Nr) (+)= A panel (kc,Mr)ᵀ · B panel (kc,Nr); args (kc, ap, bp, c, ldc, load).</summary>
    public delegate*<int, float*, float*, float*, nint, bool, void> Tile { get; }

    /// <summary>The kernel for a C <paramref name="n"/> columns wide; depends on the shape only, never on threads.</summary>
    public static GemmConfig For(GemmIsa isa, int n) => isa == GemmIsa.Avx512 && n <= Avx512Narrow.Nr ? Avx512Narrow : For(isa);

    public static GemmConfig For(GemmIsa isa) => isa switch
    {
        GemmIsa.Avx512 => Avx512,
        GemmIsa.Avx2 => Avx2,
        _ => Scalar,
    };

    /// <summary>The blocking in force, rounded so MC and NC hold whole register tiles.</summary>
    public GemmBlocking Effective()
    {
        GemmBlocking b = BlockingOverride ?? Blocking;
        return new GemmBlocking(RoundUp(b.Mc, Mr), Math.Max(1, b.Kc), RoundUp(b.Nc, Nr));
    }

    private static int RoundUp(int x, int to) => Math.Max(to, (x + to - 1) / to * to);
}
