using System.Runtime.InteropServices;

namespace Microsoft.ML.Lora.Onnx;

/// <summary>A dense tensor stored as little-endian bytes: an initializer or a TENSOR attribute value.</summary>
public sealed class OnnxTensor
{
    private OnnxTensor(string name, OnnxElementType elementType, long[] dims, ReadOnlyMemory<byte> rawData)
    {
        Name = name;
        ElementType = elementType;
        Dims = dims;
        RawData = rawData;
    }

    /// <summary>Tensor name (may be empty for attribute values).</summary>
    public string Name { get; }

    /// <summary>Element type.</summary>
    public OnnxElementType ElementType { get; }

    /// <summary>Shape; empty for a scalar.</summary>
    public IReadOnlyList<long> Dims { get; }

    /// <summary>Little-endian element bytes, row-major.</summary>
    public ReadOnlyMemory<byte> RawData { get; }

    /// <summary>Creates a tensor from little-endian bytes (copied), checking the byte count against the shape.</summary>
    public static OnnxTensor FromRaw(string name, OnnxElementType elementType, long[] dims, ReadOnlySpan<byte> rawLittleEndian)
    {
        ArgumentNullException.ThrowIfNull(name);
        ArgumentNullException.ThrowIfNull(dims);
        long count = 1;
        foreach (long d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"tensor '{name}': dimension {d} in [{string.Join(", ", dims)}] is negative", nameof(dims));
            }

            count = checked(count * d);
        }

        long expected = checked(count * elementType.SizeInBytes());
        if (rawLittleEndian.Length != expected)
        {
            throw new ArgumentException(
                $"tensor '{name}': {rawLittleEndian.Length} bytes given, but shape [{string.Join(", ", dims)}] of {elementType} needs {expected}",
                nameof(rawLittleEndian));
        }

        return new OnnxTensor(name, elementType, (long[])dims.Clone(), rawLittleEndian.ToArray());
    }

    /// <summary>Float tensor.</summary>
    public static OnnxTensor FromFloats(string name, long[] dims, ReadOnlySpan<float> values) =>
        FromRaw(name, OnnxElementType.Float, dims, AsLittleEndianBytes(values));

    /// <summary>Int64 tensor.</summary>
    public static OnnxTensor FromInt64s(string name, long[] dims, ReadOnlySpan<long> values) =>
        FromRaw(name, OnnxElementType.Int64, dims, AsLittleEndianBytes(values));

    /// <summary>Int32 tensor.</summary>
    public static OnnxTensor FromInt32s(string name, long[] dims, ReadOnlySpan<int> values) =>
        FromRaw(name, OnnxElementType.Int32, dims, AsLittleEndianBytes(values));

    /// <summary>Float16 tensor.</summary>
    public static OnnxTensor FromHalves(string name, long[] dims, ReadOnlySpan<Half> values) =>
        FromRaw(name, OnnxElementType.Float16, dims, AsLittleEndianBytes(values));

    private static ReadOnlySpan<byte> AsLittleEndianBytes<T>(ReadOnlySpan<T> values)
        where T : unmanaged
    {
        // ONNX raw_data is little-endian by definition (onnx.proto, TensorProto.raw_data).
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("ONNX export needs a little-endian machine: raw_data is little-endian");
        }

        return MemoryMarshal.AsBytes(values);
    }
}
