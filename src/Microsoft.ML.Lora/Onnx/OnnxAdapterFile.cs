using Google.FlatBuffers;
using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora.Onnx;

/// <summary>
/// ONNX Runtime's LoRA adapter file (<c>.onnx_adapter</c>): a FlatBuffer with file identifier <c>TORT</c>, root table
/// <c>Adapter</c> { format_version, adapter_version, model_version, parameters } and one <c>Parameter</c> { name, dims,
/// data_type, raw_data (8-byte aligned, little-endian) } per tensor (onnxruntime's <c>adapter_schema.fbs</c>, format
/// version 1). ONNX Runtime loads it with <c>OrtLoraAdapter</c> and feeds each parameter to the graph input of the same
/// name when the adapter is active (<c>RunOptions.AddActiveLoraAdapter</c>; GenAI's <c>Adapters</c>).
/// </summary>
public static class OnnxAdapterFile
{
    /// <summary>The schema's format version; ONNX Runtime refuses any other.</summary>
    public const int FormatVersion = 1;

    /// <summary>The FlatBuffer file identifier.</summary>
    public const string Identifier = "TORT";

    /// <summary>The file extension ONNX Runtime GenAI uses.</summary>
    public const string Extension = ".onnx_adapter";

    // onnxruntime.adapters.TensorDataType.FLOAT
    private const int FloatType = 1;

    // FlatBuffers offsets are 32-bit signed; leave room for the tables and padding.
    private const long MaxBytes = int.MaxValue - (64L << 20);

    /// <summary>
    /// Writes F32 <paramref name="parameters"/> (name → shape and values, e.g. <see cref="LlamaOnnxExporter.AdapterInputs"/>)
    /// to <paramref name="path"/> atomically, creating missing parent folders.
    /// </summary>
    public static void Write(string path, IReadOnlyDictionary<string, (int[] Shape, float[] Values)> parameters, int adapterVersion = 1, int modelVersion = 1)
    {
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(parameters);
        if (parameters.Count == 0)
        {
            throw new ArgumentException($"{path}: an adapter file needs at least one parameter", nameof(parameters));
        }

        long total = 0;
        foreach (var (name, (shape, values)) in parameters)
        {
            ArgumentException.ThrowIfNullOrEmpty(name, nameof(parameters));
            long count = 1;
            foreach (int d in shape)
            {
                if (d < 0)
                {
                    throw new ArgumentException($"{path}: parameter '{name}' has a negative dimension in [{string.Join(", ", shape)}]", nameof(parameters));
                }

                count = checked(count * d);
            }

            if (count != values.Length)
            {
                throw new ArgumentException($"{path}: parameter '{name}' has shape [{string.Join(", ", shape)}] ({count} values) but {values.Length} values", nameof(parameters));
            }

            int bad = Array.FindIndex(values, static v => !float.IsFinite(v));
            if (bad >= 0)
            {
                throw new ArgumentException($"{path}: parameter '{name}' has a non-finite value ({values[bad]}) at index {bad}", nameof(parameters));
            }

            total = checked(total + (4L * values.Length) + (8L * shape.Length) + name.Length + 64);
        }

        if (total > MaxBytes)
        {
            throw new ArgumentException($"{path}: {total} bytes of parameters exceed what one FlatBuffer can address ({MaxBytes} bytes)", nameof(parameters));
        }

        byte[] bytes = Build(parameters, adapterVersion, modelVersion, (int)total);
        string full = Path.GetFullPath(path);
        Directory.CreateDirectory(Path.GetDirectoryName(full)!);
        AtomicFile.Write(full, stream => stream.Write(bytes));
    }

    private static byte[] Build(IReadOnlyDictionary<string, (int[] Shape, float[] Values)> parameters, int adapterVersion, int modelVersion, int sizeHint)
    {
        var builder = new FlatBufferBuilder(Math.Max(1024, sizeHint)) { ForceDefaults = true };
        var offsets = new List<int>(parameters.Count);
        foreach (var (name, (shape, values)) in parameters.OrderBy(static p => p.Key, StringComparer.Ordinal))
        {
            StringOffset nameOffset = builder.CreateString(name);
            builder.StartVector(sizeof(long), shape.Length, sizeof(long));
            builder.Add(shape.Select(static d => (long)d).ToArray());
            VectorOffset dims = builder.EndVector();

            // raw_data is declared force_align 8: ONNX Runtime maps the floats in place.
            builder.StartVector(1, values.Length * sizeof(float), 8);
            builder.Add(BitConverter.IsLittleEndian ? System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray() : LittleEndian(values));
            VectorOffset raw = builder.EndVector();

            builder.StartTable(4);
            builder.AddOffset(0, nameOffset.Value, 0);
            builder.AddOffset(1, dims.Value, 0);
            builder.AddInt(2, FloatType, 0);
            builder.AddOffset(3, raw.Value, 0);
            offsets.Add(builder.EndTable());
        }

        builder.StartVector(sizeof(int), offsets.Count, sizeof(int));
        for (int i = offsets.Count - 1; i >= 0; i--)
        {
            builder.AddOffset(offsets[i]);
        }

        VectorOffset list = builder.EndVector();
        builder.StartTable(4);
        builder.AddInt(0, FormatVersion, 0);
        builder.AddInt(1, adapterVersion, 0);
        builder.AddInt(2, modelVersion, 0);
        builder.AddOffset(3, list.Value, 0);
        builder.Finish(builder.EndTable(), Identifier);
        return builder.SizedByteArray();
    }

    private static byte[] LittleEndian(float[] values)
    {
        var bytes = new byte[values.Length * sizeof(float)];
        for (int i = 0; i < values.Length; i++)
        {
            System.Buffers.Binary.BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * sizeof(float)), values[i]);
        }

        return bytes;
    }
}
