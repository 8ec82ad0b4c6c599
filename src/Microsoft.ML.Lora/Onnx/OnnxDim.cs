namespace Microsoft.ML.Lora.Onnx;

/// <summary>One dimension of a graph input or output: a fixed size (<c>dim_value</c>) or a symbol (<c>dim_param</c>).</summary>
public readonly record struct OnnxDim
{
    private OnnxDim(long? value, string? symbol)
    {
        Value = value;
        Symbol = symbol;
    }

    /// <summary>Fixed size, or null when symbolic.</summary>
    public long? Value { get; }

    /// <summary>Symbolic name such as "batch", or null when fixed.</summary>
    public string? Symbol { get; }

    /// <summary>A fixed dimension.</summary>
    public static OnnxDim Fixed(long value) => value >= 0
        ? new OnnxDim(value, null)
        : throw new ArgumentOutOfRangeException(nameof(value), value, "a fixed ONNX dimension must be >= 0; use a symbolic name for unknown sizes");

    /// <summary>A symbolic dimension.</summary>
    public static OnnxDim Symbolic(string symbol) => !string.IsNullOrEmpty(symbol)
        ? new OnnxDim(null, symbol)
        : throw new ArgumentException("a symbolic ONNX dimension needs a non-empty name such as \"batch\"", nameof(symbol));

    public static implicit operator OnnxDim(long value) => Fixed(value);

    public static implicit operator OnnxDim(string symbol) => Symbolic(symbol);

    /// <inheritdoc/>
    public override string ToString() => Symbol ?? Value!.Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
