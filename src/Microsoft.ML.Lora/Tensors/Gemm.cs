namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Matrix multiply: C (M,N) = (accumulate ? C : 0) + op(A) · op(B), row-major with leading dimensions.
/// op(A) is A (M,K) or, with <c>transA</c>, Aᵀ where A is stored (K,M); op(B) is B (K,N) or, with
/// <c>transB</c>, Bᵀ where B is stored (N,K) — the layout of a Linear weight (OC,C).
/// The B operand may be F32 or BF16 (converted while packing).
/// </summary>
public static unsafe partial class Gemm
{
    /// <summary>F32 × F32.</summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float* a, int lda, float* b, int ldb, float* c, int ldc, bool accumulate)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float sum = accumulate ? c[(long)i * ldc + j] : 0f;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[(long)p * lda + i] : a[(long)i * lda + p];
                    float bv = transB ? b[(long)j * ldb + p] : b[(long)p * ldb + j];
                    sum += av * bv;
                }

                c[(long)i * ldc + j] = sum;
            }
        }
    }

    /// <summary>F32 × BF16.</summary>
    public static void Run(bool transA, bool transB, int m, int n, int k, float* a, int lda, ushort* b, int ldb, float* c, int ldc, bool accumulate)
    {
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                float sum = accumulate ? c[(long)i * ldc + j] : 0f;
                for (int p = 0; p < k; p++)
                {
                    float av = transA ? a[(long)p * lda + i] : a[(long)i * lda + p];
                    float bv = Bf16.ToFloat(transB ? b[(long)j * ldb + p] : b[(long)p * ldb + j]);
                    sum += av * bv;
                }

                c[(long)i * ldc + j] = sum;
            }
        }
    }
}
