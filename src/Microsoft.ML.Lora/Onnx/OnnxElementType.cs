namespace Microsoft.ML.Lora.Onnx;

/// <summary>ONNX <c>TensorProto.DataType</c> values this exporter writes (numbers from onnx.proto).</summary>
public enum OnnxElementType
{
    /// <summary>32-bit IEEE float.</summary>
    Float = 1,

    /// <summary>Unsigned byte.</summary>
    UInt8 = 2,

    /// <summary>Signed byte.</summary>
    Int8 = 3,

    /// <summary>32-bit signed integer.</summary>
    Int32 = 6,

    /// <summary>64-bit signed integer.</summary>
    Int64 = 7,

    /// <summary>Boolean, one byte per element.</summary>
    Bool = 9,

    /// <summary>16-bit IEEE half.</summary>
    Float16 = 10,
}

internal static class OnnxElementTypeExtensions
{
    /// <summary>Bytes one element takes in <c>raw_data</c> (little-endian).</summary>
    public static int SizeInBytes(this OnnxElementType type) => type switch
    {
        OnnxElementType.Float => 4,
        OnnxElementType.UInt8 => 1,
        OnnxElementType.Int8 => 1,
        OnnxElementType.Int32 => 4,
        OnnxElementType.Int64 => 8,
        OnnxElementType.Bool => 1,
        OnnxElementType.Float16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unsupported ONNX element type"),
    };
}
