namespace Microsoft.ML.Lora.Tensors;

/// <summary>SwiGLU gating of the Llama MLP: h = silu(gate) · up.</summary>
public static unsafe class SwiGlu
{
    /// <summary>gate (N), up (N) -> h (N).</summary>
    public static void Forward(float* gate, float* up, float* h, long n) => throw new NotImplementedException();

    /// <summary>dh (N) -> dgate (N), dup (N), both overwritten.</summary>
    public static void Backward(float* dh, float* gate, float* up, float* dgate, float* dup, long n) => throw new NotImplementedException();
}
