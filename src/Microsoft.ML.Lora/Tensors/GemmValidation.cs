namespace Microsoft.ML.Lora.Tensors;

/// <summary>Argument checks of <see cref="Gemm"/>, always on.</summary>
internal static unsafe class GemmValidation
{
    public static void Check(bool transA, bool transB, int m, int n, int k, void* a, int lda, void* b, int ldb, float* c, int ldc)
    {
        if (m < 0 || n < 0 || k < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(m), $"GEMM sizes must be non-negative, got m={m}, n={n}, k={k}.");
        }

        CheckOperand("A", transA ? "(K,M)" : "(M,K)", transA ? k : m, transA ? m : k, a, lda, nameof(lda));
        CheckOperand("B", transB ? "(N,K)" : "(K,N)", transB ? n : k, transB ? k : n, b, ldb, nameof(ldb));
        CheckOperand("C", "(M,N)", m, n, c, ldc, nameof(ldc));
    }

    private static void CheckOperand(string name, string layout, int rows, int cols, void* p, int ld, string ldName)
    {
        if (ld < cols)
        {
            throw new ArgumentOutOfRangeException(ldName, ld, $"GEMM operand {name} is stored {layout} = ({rows},{cols}); its leading dimension must be at least {cols}.");
        }

        if (p == null && rows > 0 && cols > 0)
        {
            throw new ArgumentNullException(name.ToLowerInvariant(), $"GEMM operand {name} {layout} = ({rows},{cols}) is not empty but its pointer is null.");
        }
    }
}
