namespace Microsoft.ML.Lora.Formats;

/// <summary>One tensor's header entry, already validated.</summary>
/// <param name="Name">Tensor name, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</param>
/// <param name="DType">Header dtype string, e.g. "BF16" (see <see cref="SafeTensorsDTypes"/>).</param>
/// <param name="Shape">Dimensions, outermost first; empty for a scalar.</param>
/// <param name="Begin">Start of the data, in bytes after the header.</param>
/// <param name="End">End (exclusive) of the data, in bytes after the header.</param>
public sealed record SafeTensorInfo(string Name, string DType, int[] Shape, long Begin, long End)
{
    /// <summary>Product of <see cref="Shape"/> (1 for a scalar).</summary>
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (int d in Shape)
            {
                n *= d;
            }

            return n;
        }
    }

    /// <summary>End − Begin.</summary>
    public long ByteLength => End - Begin;

    /// <summary>Shape formatted as [a, b].</summary>
    public string ShapeText => Tensors.Tensor.Format(Shape);
}
