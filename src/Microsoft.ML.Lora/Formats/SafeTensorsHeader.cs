using System.Text.Json;

namespace Microsoft.ML.Lora.Formats;

/// <summary>Parses and validates the JSON header of a safetensors file.</summary>
internal static class SafeTensorsHeader
{
    /// <summary>Name of the optional string→string map in the header.</summary>
    public const string MetadataKey = "__metadata__";

    /// <summary>
    /// Largest header accepted: 100,000,000 bytes, the limit of the reference implementation
    /// (huggingface/safetensors, <c>MAX_HEADER_SIZE</c>); a larger length is garbage, not a header.
    /// </summary>
    public const long MaxHeaderBytes = 100_000_000;

    /// <summary>
    /// Validates <paramref name="json"/> against a data section of <paramref name="dataLength"/> bytes:
    /// every entry has a known dtype, non-negative dims, offsets inside the data whose span equals
    /// elements × dtype size, and the tensors tile the data section exactly, as the reference implementation
    /// requires: in offset order each starts where the previous ended, the first at 0, the last ending at the
    /// section's end (no gap, overlap or trailing byte — so a header length off by one is caught).
    /// </summary>
    public static (Dictionary<string, SafeTensorInfo> Tensors, Dictionary<string, string> Metadata) Parse(ReadOnlySpan<byte> json, long dataLength, string file)
    {
        using var doc = StrictJson.Parse(json, file, "safetensors header");
        return ParseRoot(doc.RootElement, dataLength, file);
    }

    private static (Dictionary<string, SafeTensorInfo>, Dictionary<string, string>) ParseRoot(JsonElement root, long dataLength, string file)
    {
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{file}: safetensors header is a JSON {root.ValueKind}; expected an object of tensor entries");
        }

        var tensors = new Dictionary<string, SafeTensorInfo>(StringComparer.Ordinal);
        var metadata = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var property in root.EnumerateObject())
        {
            if (property.Name == MetadataKey)
            {
                ParseMetadata(property.Value, metadata, file);
            }
            else
            {
                tensors.Add(property.Name, ParseEntry(property.Name, property.Value, dataLength, file));
            }
        }

        CheckTiling(tensors.Values, dataLength, file);
        return (tensors, metadata);
    }

    private static void ParseMetadata(JsonElement value, Dictionary<string, string> metadata, string file)
    {
        if (value.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        if (value.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{file}: '{MetadataKey}' is a JSON {value.ValueKind}; expected an object of string values");
        }

        foreach (var item in value.EnumerateObject())
        {
            if (item.Value.ValueKind != JsonValueKind.String)
            {
                throw new InvalidDataException($"{file}: '{MetadataKey}' entry '{item.Name}' is a JSON {item.Value.ValueKind}; expected a string");
            }

            metadata[item.Name] = item.Value.GetString()!;
        }
    }

    private static SafeTensorInfo ParseEntry(string name, JsonElement entry, long dataLength, string file)
    {
        string where = $"{file}: tensor '{name}'";
        if (entry.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{where}: entry is a JSON {entry.ValueKind}; expected an object with dtype, shape and data_offsets");
        }

        string dtype = RequireProperty(entry, "dtype", JsonValueKind.String, where).GetString()!;
        if (!SafeTensorsDTypes.TryGetSize(dtype, out int elementSize))
        {
            throw new InvalidDataException($"{where}: unknown dtype '{dtype}'; expected one of {string.Join(", ", SafeTensorsDTypes.Known)}");
        }

        var shapeJson = RequireProperty(entry, "shape", JsonValueKind.Array, where);
        var shape = new int[shapeJson.GetArrayLength()];
        int axis = 0;
        foreach (var dim in shapeJson.EnumerateArray())
        {
            if (dim.ValueKind != JsonValueKind.Number || !dim.TryGetInt32(out int d) || d < 0)
            {
                throw new InvalidDataException($"{where}: shape[{axis}] is {dim.GetRawText()}; expected an integer in 0..{int.MaxValue}");
            }

            shape[axis++] = d;
        }

        var offsets = RequireProperty(entry, "data_offsets", JsonValueKind.Array, where);
        if (offsets.GetArrayLength() != 2)
        {
            throw new InvalidDataException($"{where}: data_offsets has {offsets.GetArrayLength()} values; expected [begin, end]");
        }

        long begin = ReadOffset(offsets[0], "begin", where);
        long end = ReadOffset(offsets[1], "end", where);
        if (end < begin || end > dataLength)
        {
            throw new InvalidDataException($"{where}: data_offsets [{begin}, {end}] are outside the data section of {dataLength} bytes (expected begin ≤ end ≤ {dataLength})");
        }

        long expectedBytes = ByteSize(shape, elementSize, where);
        if (end - begin != expectedBytes)
        {
            throw new InvalidDataException($"{where}: data_offsets [{begin}, {end}] span {end - begin} bytes; shape {Tensors.Tensor.Format(shape)} of {dtype} needs {expectedBytes}");
        }

        return new SafeTensorInfo(name, dtype, shape, begin, end);
    }

    private static JsonElement RequireProperty(JsonElement entry, string key, JsonValueKind kind, string where)
    {
        if (!entry.TryGetProperty(key, out var value))
        {
            throw new InvalidDataException($"{where}: '{key}' is missing");
        }

        if (value.ValueKind != kind)
        {
            throw new InvalidDataException($"{where}: '{key}' is a JSON {value.ValueKind}; expected {kind}");
        }

        return value;
    }

    private static long ReadOffset(JsonElement value, string which, string where)
    {
        if (value.ValueKind != JsonValueKind.Number || !value.TryGetInt64(out long offset) || offset < 0)
        {
            throw new InvalidDataException($"{where}: data_offsets {which} is {value.GetRawText()}; expected a non-negative integer");
        }

        return offset;
    }

    private static long ByteSize(int[] shape, int elementSize, string where)
    {
        long n = elementSize;
        foreach (int d in shape)
        {
            // n ≤ long.MaxValue / d keeps n · d from overflowing.
            if (d != 0 && n > long.MaxValue / d)
            {
                throw new InvalidDataException($"{where}: shape {Tensors.Tensor.Format(shape)} has more bytes than a file can hold");
            }

            n *= d;
        }

        return n;
    }

    private static void CheckTiling(IEnumerable<SafeTensorInfo> tensors, long dataLength, string file)
    {
        SafeTensorInfo? previous = null;
        long expected = 0;
        foreach (var t in tensors.OrderBy(static t => t.Begin).ThenBy(static t => t.End))
        {
            if (t.Begin < expected)
            {
                throw new InvalidDataException(
                    $"{file}: tensor '{t.Name}' data [{t.Begin}, {t.End}] overlaps tensor '{previous!.Name}' data [{previous.Begin}, {previous.End}]; expected disjoint byte ranges");
            }

            if (t.Begin > expected)
            {
                string after = previous is null ? "the start of the data section" : $"tensor '{previous.Name}' (which ends at {previous.End})";
                throw new InvalidDataException(
                    $"{file}: tensor '{t.Name}' data starts at {t.Begin}, leaving a gap of {t.Begin - expected} bytes after {after}; tensors must tile the data section — wrong header length or a corrupt file?");
            }

            expected = t.End;
            previous = t;
        }

        if (expected != dataLength)
        {
            throw new InvalidDataException(
                $"{file}: the tensors cover {expected} bytes but the data section after the header has {dataLength}; {dataLength - expected} trailing bytes — wrong header length or a corrupt file?");
        }
    }
}
