namespace Microsoft.ML.Lora.Onnx;

/// <summary>How <see cref="OnnxModelWriter"/> writes a model.</summary>
public sealed class OnnxSaveOptions
{
    /// <summary>
    /// Largest serialized model protobuf can parse: 2 GiB - 1 (protobuf's int32 message size limit).
    /// Past it, large initializers go to external data even when <see cref="ExternalData"/> is off.
    /// </summary>
    public const long ProtobufLimitBytes = int.MaxValue;

    /// <summary>Default opset of the standard ("ai.onnx") domain; 17 per DESIGN §4.</summary>
    public int Opset { get; init; } = 17;

    /// <summary>Further operator sets, e.g. ("com.microsoft", 1).</summary>
    public IReadOnlyList<(string Domain, long Version)> ExtraOpsets { get; init; } = [];

    /// <summary>Written as <c>producer_name</c>.</summary>
    public string ProducerName { get; init; } = "Microsoft.ML.Lora";

    /// <summary>Written as <c>producer_version</c> when not null.</summary>
    public string? ProducerVersion { get; init; }

    /// <summary>Key/value pairs written as <c>metadata_props</c>.</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; init; } = new Dictionary<string, string>();

    /// <summary>Store initializers of at least <see cref="ExternalDataThreshold"/> bytes in <c>&lt;file&gt;.data</c>.</summary>
    public bool ExternalData { get; init; }

    /// <summary>Initializers this big or bigger (bytes) go to external data. 1024 as in onnx.save's size_threshold.</summary>
    public long ExternalDataThreshold { get; init; } = 1024;

    /// <summary>Model size past which external data is forced; a test hook, otherwise <see cref="ProtobufLimitBytes"/>.</summary>
    internal long InlineLimitBytes { get; init; } = ProtobufLimitBytes;

    internal void Validate()
    {
        if (Opset < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Opset), Opset, "opset must be >= 1 (DESIGN §4 asks for 17 or newer)");
        }

        if (ExternalDataThreshold < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(ExternalDataThreshold), ExternalDataThreshold, "threshold is a byte count and must be >= 0");
        }

        ArgumentNullException.ThrowIfNull(ProducerName);
        ArgumentNullException.ThrowIfNull(ExtraOpsets);
        ArgumentNullException.ThrowIfNull(Metadata);
        foreach ((string domain, _) in ExtraOpsets)
        {
            if (string.IsNullOrEmpty(domain) || domain == "ai.onnx")
            {
                throw new ArgumentException($"extra opset domain '{domain}' repeats the default domain; set Opset instead", nameof(ExtraOpsets));
            }
        }
    }
}
