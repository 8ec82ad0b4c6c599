namespace Microsoft.ML.Lora.Tensors;

/// <summary>Fused softmax + cross-entropy over the vocabulary, with ignored targets.</summary>
public static unsafe class CrossEntropy
{
    /// <summary>Target value whose row contributes no loss and no gradient (PyTorch's default ignore_index).</summary>
    public const int IgnoreIndex = -100;

    /// <summary>
    /// logits (N,V), targets (N) -> losses (N) (0 where ignored); returns the number of rows not ignored.
    /// When <paramref name="dlogits"/> is not null, writes (softmax − onehot) · <paramref name="gradScale"/>
    /// into it (0 for ignored rows); it may alias <paramref name="logits"/>.
    /// </summary>
    public static int ForwardBackward(float* logits, int* targets, float* losses, float* dlogits, int n, int v, float gradScale) => throw new NotImplementedException();
}
