namespace Microsoft.ML.Lora.Tensors;

/// <summary>RMSNorm as Hugging Face's LlamaRMSNorm computes it in F32: y = x · rstd · weight, rstd = 1/√(mean(x²) + eps).</summary>
public static unsafe class RmsNorm
{
    /// <summary>x (N,C), weight (C) -> y (N,C), rstd (N).</summary>
    public static void Forward(float* x, float* weight, float* y, float* rstd, int n, int c, float eps) => throw new NotImplementedException();

    /// <summary>dy (N,C) -> dx (N,C) overwritten; dweight (C) accumulated when not null.</summary>
    public static void Backward(float* dy, float* x, float* weight, float* rstd, float* dx, float* dweight, int n, int c) => throw new NotImplementedException();
}
