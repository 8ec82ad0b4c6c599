using System.Runtime.InteropServices;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// OpenBLAS <c>cblas_sgemm</c>, the CPU peer of our GEMM (Debian's libopenblas0-pthread; install with
/// <c>eng/install-deps.sh --bench</c>). Loaded at run time so the benchmark still runs without it.
/// </summary>
internal sealed unsafe class OpenBlas
{
    private const int RowMajor = 101, NoTrans = 111, Trans = 112;

    private readonly delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void> sgemm;
    private readonly delegate* unmanaged<int, void> setThreads;
    private readonly delegate* unmanaged<byte*> coreName;

    private OpenBlas(nint library)
    {
        sgemm = (delegate* unmanaged<int, int, int, int, int, int, float, float*, int, float*, int, float, float*, int, void>)NativeLibrary.GetExport(library, "cblas_sgemm");
        setThreads = (delegate* unmanaged<int, void>)NativeLibrary.GetExport(library, "openblas_set_num_threads");
        coreName = (delegate* unmanaged<byte*>)NativeLibrary.GetExport(library, "openblas_get_corename");
    }

    public const string LibraryName = "libopenblas.so.0";

    /// <summary>The library, or null when it cannot be loaded.</summary>
    public static OpenBlas? TryLoad() => NativeLibrary.TryLoad(LibraryName, out nint handle) ? new OpenBlas(handle) : null;

    public void SetThreads(int threads) => setThreads(threads);

    /// <summary>The kernel family OpenBLAS picked for this CPU (e.g. Haswell, SkylakeX, Zen).</summary>
    public string CoreName => Marshal.PtrToStringAnsi((nint)coreName()) ?? "?";

    /// <summary>Same contract as <see cref="Tensors.Gemm.Run(bool, bool, int, int, int, float*, int, float*, int, float*, int, bool)"/>.</summary>
    public void Sgemm(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate) =>
        sgemm(RowMajor, transA ? Trans : NoTrans, transB ? Trans : NoTrans, m, n, k, 1f, a, lda, b, ldb, accumulate ? 1f : 0f, c, ldc);
}
