using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// Keys and values of every layer for the tokens seen so far, so that generation computes only the
/// new tokens: per layer K and V (B, MaxTokens, NKV, HS) after RoPE.
/// </summary>
public sealed class KvCache : IDisposable
{
    private readonly Tensor[] keys;
    private readonly Tensor[] values;

    /// <summary>A cache for <paramref name="batch"/> rows of up to <paramref name="maxTokens"/> tokens on <paramref name="backend"/> (the model's; default native).</summary>
    public KvCache(LlamaConfig config, int batch, int maxTokens, Backend? backend = null)
    {
        backend ??= Backend.Native;
        if (batch < 1 || maxTokens < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(maxTokens), $"a KV cache needs batch ≥ 1 and maxTokens ≥ 1; got {batch} and {maxTokens}");
        }

        Batch = batch;
        MaxTokens = maxTokens;
        keys = new Tensor[config.NumHiddenLayers];
        values = new Tensor[config.NumHiddenLayers];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = backend.Empty(DType.F32, batch, maxTokens, config.NumKeyValueHeads, config.HeadDim);
            values[i] = backend.Empty(DType.F32, batch, maxTokens, config.NumKeyValueHeads, config.HeadDim);
        }
    }

    /// <summary>Rows B.</summary>
    public int Batch { get; }

    /// <summary>Capacity in tokens per row.</summary>
    public int MaxTokens { get; }

    /// <summary>Tokens cached so far (the same for every row).</summary>
    public int Length { get; internal set; }

    /// <summary>Layer <paramref name="layer"/>'s K (B, MaxTokens, NKV, HS).</summary>
    public Tensor Keys(int layer) => keys[layer];

    /// <summary>Layer <paramref name="layer"/>'s V (B, MaxTokens, NKV, HS).</summary>
    public Tensor Values(int layer) => values[layer];

    /// <summary>Forgets every cached token (the memory stays).</summary>
    public void Clear() => Length = 0;

    /// <inheritdoc/>
    public void Dispose()
    {
        foreach (var t in keys.Concat(values))
        {
            t?.Dispose();
        }
    }
}
