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

    // Blocking: packed A block (MC,KC) lives in L2 and is streamed once per NR columns; one packed B
    // micro-panel (KC,NR) stays in L1 while the kernel walks the MC rows; the packed B panel (KC,NC)
    // lives in L2/L3. Measured on the 2-core Zen (48 KiB L1d, 1 MiB L2 per core, 32 MiB L3).
    // TODO(measure) values below are starting points, replaced by the sweep in GemmConfig's history.
    public static GemmConfig Avx512 { get; } = new(GemmIsa.Avx512, 12, 32, new GemmBlocking(192, 256, 4096), &GemmMicroKernels.Avx512Tile12x32);

    public static GemmConfig Avx2 { get; } = new(GemmIsa.Avx2, 6, 16, new GemmBlocking(144, 256, 4096), &GemmMicroKernels.Avx2Tile6x16);

    public static GemmConfig Scalar { get; } = new(GemmIsa.Scalar, 4, 4, new GemmBlocking(64, 256, 1024), &GemmMicroKernels.ScalarTile4x4);

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
