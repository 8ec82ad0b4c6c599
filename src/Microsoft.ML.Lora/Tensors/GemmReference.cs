namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Naive twin of <see cref="Gemm"/> in double precision, kept as the reference the tests compare
/// against: C (M,N) = (accumulate ? C : 0) + op(A) · op(B) with the same layouts and leading dimensions
/// (A (M,K) or, transposed, (K,M); B (K,N) or, transposed, (N,K)).
/// </summary>
internal static class GemmReference
{
    public static void Run(bool transA, bool transB, int m, int n, int k, double[] a, int lda, double[] b, int ldb, double[] c, int ldc, bool accumulate)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double sum = accumulate ? c[((long)i * ldc) + j] : 0.0;
                for (int p = 0; p < k; p++)
                {
                    double av = transA ? a[((long)p * lda) + i] : a[((long)i * lda) + p];
                    double bv = transB ? b[((long)j * ldb) + p] : b[((long)p * ldb) + j];
                    sum += av * bv;
                }

                c[((long)i * ldc) + j] = sum;
            }
        }
    }
}
