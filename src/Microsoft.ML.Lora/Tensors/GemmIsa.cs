using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>Instruction set of a <see cref="Gemm"/> micro-kernel.</summary>
internal enum GemmIsa
{
    /// <summary>The widest path the CPU supports.</summary>
    Auto,

    /// <summary>Portable scalar code; runs everywhere.</summary>
    Scalar,

    /// <summary>Vector256 with FMA3 (Haswell, Zen 1 and later).</summary>
    Avx2,

    /// <summary>Vector512 with AVX-512F (Skylake-X, Zen 4 and later).</summary>
    Avx512,
}

/// <summary>Which <see cref="GemmIsa"/> this CPU runs, and a per-thread override for tests.</summary>
internal static class GemmIsaSelector
{
    // Thread-static so that a test forcing one path does not change the path of tests running
    // concurrently on other threads; the ISA is resolved on the calling thread before work fans out.
    [ThreadStatic]
    private static GemmIsa forced;

    /// <summary>
    /// Forces a path for GEMMs called from the current thread (<see cref="GemmIsa.Auto"/> restores
    /// detection). Forcing a path the CPU lacks throws <see cref="PlatformNotSupportedException"/>.
    /// </summary>
    public static GemmIsa ForceIsa
    {
        get => forced;
        set => forced = value == GemmIsa.Auto || IsSupported(value)
            ? value
            : throw new PlatformNotSupportedException($"GEMM path {value} needs CPU support this machine lacks (best available: {Best}).");
    }

    /// <summary>The widest supported path.</summary>
    public static GemmIsa Best { get; } =
        IsSupported(GemmIsa.Avx512) ? GemmIsa.Avx512 : IsSupported(GemmIsa.Avx2) ? GemmIsa.Avx2 : GemmIsa.Scalar;

    /// <summary>The path a GEMM called now on this thread takes.</summary>
    public static GemmIsa Current => forced == GemmIsa.Auto ? Best : forced;

    /// <summary>Whether this CPU can run <paramref name="isa"/>.</summary>
    public static bool IsSupported(GemmIsa isa) => isa switch
    {
        GemmIsa.Scalar => true,
        GemmIsa.Avx2 => Avx2.IsSupported && Fma.IsSupported,
        GemmIsa.Avx512 => Avx512F.IsSupported,
        _ => false,
    };
}
