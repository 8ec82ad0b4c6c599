namespace Microsoft.ML.Lora.Onnx;

/// <summary><c>AttributeProto.AttributeType</c> values (numbers from onnx.proto).</summary>
public enum OnnxAttributeType
{
    /// <summary>One float, field <c>f</c>.</summary>
    Float = 1,

    /// <summary>One int64, field <c>i</c>.</summary>
    Int = 2,

    /// <summary>One string (bytes), field <c>s</c>.</summary>
    String = 3,

    /// <summary>One tensor, field <c>t</c>.</summary>
    Tensor = 4,

    /// <summary>Float list, field <c>floats</c>.</summary>
    Floats = 6,

    /// <summary>Int64 list, field <c>ints</c>.</summary>
    Ints = 7,
}

/// <summary>A node attribute; create with the static factories.</summary>
public sealed class OnnxAttribute
{
    private OnnxAttribute(string name, OnnxAttributeType type)
    {
        if (string.IsNullOrEmpty(name))
        {
            throw new ArgumentException("an ONNX attribute needs a name", nameof(name));
        }

        Name = name;
        Type = type;
    }

    /// <summary>Attribute name, e.g. "axis".</summary>
    public string Name { get; }

    /// <summary>Which value field is set.</summary>
    public OnnxAttributeType Type { get; }

    internal float FloatValue { get; private init; }

    internal long IntValue { get; private init; }

    internal string StringValue { get; private init; } = string.Empty;

    internal OnnxTensor? TensorValue { get; private init; }

    internal float[] FloatsValue { get; private init; } = [];

    internal long[] IntsValue { get; private init; } = [];

    /// <summary>FLOAT attribute.</summary>
    public static OnnxAttribute Float(string name, float value) => new(name, OnnxAttributeType.Float) { FloatValue = value };

    /// <summary>INT attribute.</summary>
    public static OnnxAttribute Int(string name, long value) => new(name, OnnxAttributeType.Int) { IntValue = value };

    /// <summary>STRING attribute, stored as UTF-8.</summary>
    public static OnnxAttribute String(string name, string value) =>
        new(name, OnnxAttributeType.String) { StringValue = value ?? throw new ArgumentNullException(nameof(value)) };

    /// <summary>TENSOR attribute (always stored inline).</summary>
    public static OnnxAttribute Tensor(string name, OnnxTensor value) =>
        new(name, OnnxAttributeType.Tensor) { TensorValue = value ?? throw new ArgumentNullException(nameof(value)) };

    /// <summary>FLOATS attribute.</summary>
    public static OnnxAttribute Floats(string name, params float[] values) =>
        new(name, OnnxAttributeType.Floats) { FloatsValue = (float[])(values ?? throw new ArgumentNullException(nameof(values))).Clone() };

    /// <summary>INTS attribute.</summary>
    public static OnnxAttribute Ints(string name, params long[] values) =>
        new(name, OnnxAttributeType.Ints) { IntsValue = (long[])(values ?? throw new ArgumentNullException(nameof(values))).Clone() };
}
