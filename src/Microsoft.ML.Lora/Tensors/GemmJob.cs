namespace Microsoft.ML.Lora.Tensors;

/// <summary>The arguments of one <see cref="Gemm"/> call with the micro-kernel chosen for it.</summary>
internal readonly unsafe struct GemmJob<T>(
    GemmConfig config, bool transA, bool transB, int m, int n, int k, float* a, int lda, T* b, int ldb, float* c, int ldc, bool accumulate, Nf4Layout? nf4 = null)
    where T : unmanaged
{
    public readonly GemmConfig Config = config;

    /// <summary>Resolved on the calling thread, as the override is thread-static.</summary>
    public readonly GemmBlocking Blocking = config.Effective();
    public readonly bool TransA = transA;
    public readonly bool TransB = transB;
    public readonly int M = m;
    public readonly int N = n;
    public readonly int K = k;
    public readonly float* A = a;
    public readonly int Lda = lda;
    public readonly T* B = b;
    public readonly int Ldb = ldb;
    public readonly float* C = c;
    public readonly int Ldc = ldc;
    public readonly bool Accumulate = accumulate;

    /// <summary>Where the codes and state lie when B is NF4 (then <see cref="B"/> is the tensor's storage).</summary>
    public readonly Nf4Layout? Nf4 = nf4;
}
