namespace Microsoft.ML.Lora.Tensors;

/// <summary>rope_scaling of a Hugging Face config: <c>linear</c> or <c>llama3</c> (null means none).</summary>
/// <param name="Type">"linear" or "llama3".</param>
/// <param name="Factor">factor.</param>
/// <param name="LowFreqFactor">low_freq_factor (llama3).</param>
/// <param name="HighFreqFactor">high_freq_factor (llama3).</param>
/// <param name="OriginalMaxPositionEmbeddings">original_max_position_embeddings (llama3).</param>
public sealed record RopeScaling(string Type, double Factor, double LowFreqFactor = 1, double HighFreqFactor = 4, int OriginalMaxPositionEmbeddings = 8192);

/// <summary>cos/sin tables (MaxPositions, HS/2) for rotary embeddings in Hugging Face's rotate-half layout.</summary>
public sealed unsafe class RopeTable : IDisposable
{
    private RopeTable() => throw new NotImplementedException();

    /// <summary>Head size HS (even).</summary>
    public int HeadDim { get; }

    /// <summary>Positions covered.</summary>
    public int MaxPositions { get; }

    /// <summary>Builds the table: inv_freq_i = θ^(−2i/HS), adjusted by <paramref name="scaling"/>.</summary>
    public static RopeTable Create(int headDim, double theta, RopeScaling? scaling, int maxPositions) => throw new NotImplementedException();

    /// <inheritdoc/>
    public void Dispose() => throw new NotImplementedException();
}

/// <summary>Rotary position embedding, rotate-half layout: (x1, x2) -> (x1·cos − x2·sin, x2·cos + x1·sin).</summary>
public static unsafe class Rope
{
    /// <summary>x (B,T,NH,HS) rotated in place; token t of every row has position t.</summary>
    public static void Forward(float* x, RopeTable table, int b, int t, int nh, int hs) => throw new NotImplementedException();

    /// <summary>dx (B,T,NH,HS): gradient through the rotation, in place (the inverse rotation).</summary>
    public static void Backward(float* dx, RopeTable table, int b, int t, int nh, int hs) => throw new NotImplementedException();
}
