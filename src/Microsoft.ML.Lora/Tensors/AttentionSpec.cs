namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// What an attention layer does beyond causal grouped-query softmax attention.
/// </summary>
/// <param name="Window">Sliding window: the query at position i sees keys i − Window + 1 … i only; 0 for none.</param>
/// <param name="Scale">Score scale; 0 for 1/√HS (Gemma uses query_pre_attn_scalar^−½).</param>
/// <param name="Softcap">Gemma 2's attention logit soft-capping: scores → Softcap·tanh(scores/Softcap) before the mask; 0 for none.</param>
public readonly record struct AttentionSpec(int Window = 0, float Scale = 0, float Softcap = 0)
{
    /// <summary>The score scale for head size <paramref name="hs"/>: <see cref="Scale"/>, or 1/√HS when it is 0.</summary>
    public float ScaleFor(int hs) => Scale != 0 ? Scale : 1f / MathF.Sqrt(hs);

    /// <summary>Throws when a field is out of range.</summary>
    public void Validate()
    {
        if (Window < 0 || !(Scale >= 0) || float.IsInfinity(Scale) || !(Softcap >= 0) || float.IsInfinity(Softcap))
        {
            throw new ArgumentOutOfRangeException(nameof(Window), $"Attention: window {Window}, scale {Scale} and softcap {Softcap} must be finite and non-negative (0: none / default).");
        }
    }
}
