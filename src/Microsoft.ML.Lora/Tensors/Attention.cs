namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Causal scaled-dot-product attention with grouped-query heads: query head h reads kv head
/// h / (NH / NKV); scale 1/√HS. Keeps the log-sum-exp per query row instead of the probabilities.
/// </summary>
public static unsafe class Attention
{
    /// <summary>q (B,T,NH,HS), k (B,T,NKV,HS), v (B,T,NKV,HS) -> o (B,T,NH,HS), lse (B,NH,T).</summary>
    public static void Forward(float* q, float* k, float* v, float* o, float* lse, int b, int t, int nh, int nkv, int hs) => throw new NotImplementedException();

    /// <summary>dout (B,T,NH,HS) -> dq (B,T,NH,HS), dk (B,T,NKV,HS), dv (B,T,NKV,HS), all overwritten.</summary>
    public static void Backward(float* dout, float* q, float* k, float* v, float* o, float* lse, float* dq, float* dk, float* dv, int b, int t, int nh, int nkv, int hs) => throw new NotImplementedException();
}
