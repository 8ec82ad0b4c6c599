using System.Buffers;
using System.Buffers.Binary;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// Writes safetensors files and Hugging Face model folders atomically (see <see cref="AtomicFile"/>).
/// Tensors are laid out in ordinal name order, back to back; the header lists <c>__metadata__</c> first and
/// is padded with spaces to a multiple of 8 bytes so the data section starts 8-byte aligned. Metadata gets
/// <c>"format": "pt"</c> unless it sets <c>format</c>, because transformers refuses safetensors weights
/// whose metadata lacks a known format.
/// </summary>
public static partial class SafeTensorsWriter
{
    /// <summary>transformers' default <c>max_shard_size</c> ("5GB" = 5·10⁹ bytes).</summary>
    public const long DefaultMaxShardBytes = 5_000_000_000;

    /// <summary>Writes one safetensors file at <paramref name="path"/> (its folder must exist).</summary>
    /// <param name="path">Destination; replaced atomically if it exists.</param>
    /// <param name="tensors">Entries; names must be unique.</param>
    /// <param name="metadata">Optional <c>__metadata__</c> strings.</param>
    /// <param name="progress">Receives the number of data bytes written so far after each tensor.</param>
    /// <param name="cancellationToken">Checked before each tensor; cancelling leaves the destination untouched.</param>
    public static void Write(
        string path,
        IEnumerable<SafeTensorEntry> tensors,
        IReadOnlyDictionary<string, string>? metadata = null,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        var sorted = SortAndCheck(tensors);
        long done = 0;
        WriteFile(path, sorted, metadata, progress, ref done, cancellationToken);
    }

    /// <summary>
    /// Writes the weights of a Hugging Face model folder: <c>model.safetensors</c> when everything fits in
    /// <paramref name="maxShardBytes"/>, else shards <c>model-00001-of-0000N.safetensors</c> (filled greedily in
    /// name order; a tensor larger than the limit gets a shard of its own, as transformers does) and then
    /// <c>model.safetensors.index.json</c>. Each file is atomic and the index is written last; afterwards
    /// weights of an earlier save that would shadow or confuse this one (the other layout's file, stale
    /// shards) are deleted. Returns the file names written.
    /// </summary>
    public static IReadOnlyList<string> WriteModel(
        string directory,
        IEnumerable<SafeTensorEntry> tensors,
        long maxShardBytes = DefaultMaxShardBytes,
        IReadOnlyDictionary<string, string>? metadata = null,
        IProgress<long>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxShardBytes);
        var sorted = SortAndCheck(tensors);
        string full = Path.GetFullPath(directory);
        Directory.CreateDirectory(full);

        var shards = new List<List<SafeTensorEntry>> { new() };
        long shardBytes = 0;
        foreach (var entry in sorted)
        {
            if (shards[^1].Count > 0 && shardBytes + entry.ByteLength > maxShardBytes)
            {
                shards.Add([]);
                shardBytes = 0;
            }

            shards[^1].Add(entry);
            shardBytes += entry.ByteLength;
        }

        long done = 0;
        if (shards.Count == 1)
        {
            WriteFile(Path.Combine(full, SafeTensorsFolder.SingleFileName), sorted, metadata, progress, ref done, cancellationToken);
            DeleteStale(full, keep: [SafeTensorsFolder.SingleFileName]);
            return [SafeTensorsFolder.SingleFileName];
        }

        var names = new List<string>();
        var weightMap = new SortedDictionary<string, string>(StringComparer.Ordinal);
        for (int i = 0; i < shards.Count; i++)
        {
            string name = $"model-{i + 1:D5}-of-{shards.Count:D5}.safetensors";
            WriteFile(Path.Combine(full, name), shards[i], metadata, progress, ref done, cancellationToken);
            names.Add(name);
            foreach (var entry in shards[i])
            {
                weightMap.Add(entry.Name, name);
            }
        }

        long totalSize = sorted.Sum(e => e.ByteLength);
        AtomicFile.Write(Path.Combine(full, SafeTensorsFolder.IndexFileName), stream => WriteIndex(stream, totalSize, metadata, weightMap));
        names.Add(SafeTensorsFolder.IndexFileName);
        DeleteStale(full, keep: names);
        return names;
    }

    /// <summary>The header bytes (length field excluded) for <paramref name="sorted"/>, padded to a multiple of 8.</summary>
    internal static byte[] BuildHeader(IReadOnlyList<SafeTensorEntry> sorted, IReadOnlyDictionary<string, string>? metadata)
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteStartObject(SafeTensorsHeader.MetadataKey);
            foreach (var (key, value) in WithFormat(metadata))
            {
                json.WriteString(key, value);
            }

            json.WriteEndObject();
            long offset = 0;
            foreach (var entry in sorted)
            {
                json.WriteStartObject(entry.Name);
                json.WriteString("dtype", entry.DType);
                json.WriteStartArray("shape");
                foreach (int d in entry.Shape)
                {
                    json.WriteNumberValue(d);
                }

                json.WriteEndArray();
                json.WriteStartArray("data_offsets");
                json.WriteNumberValue(offset);
                json.WriteNumberValue(offset + entry.ByteLength);
                json.WriteEndArray();
                json.WriteEndObject();
                offset += entry.ByteLength;
            }

            json.WriteEndObject();
        }

        int padded = (buffer.WrittenCount + 7) & ~7;
        var header = new byte[padded];
        buffer.WrittenSpan.CopyTo(header);
        header.AsSpan(buffer.WrittenCount).Fill((byte)' ');
        return header;
    }

    private static List<SafeTensorEntry> SortAndCheck(IEnumerable<SafeTensorEntry> tensors)
    {
        ArgumentNullException.ThrowIfNull(tensors);
        var sorted = tensors.ToList();
        sorted.Sort((a, b) => string.CompareOrdinal(a.Name, b.Name));
        for (int i = 1; i < sorted.Count; i++)
        {
            if (sorted[i].Name == sorted[i - 1].Name)
            {
                throw new ArgumentException($"tensor '{sorted[i].Name}' is given twice", nameof(tensors));
            }
        }

        return sorted;
    }

    private static void WriteFile(
        string path,
        IReadOnlyList<SafeTensorEntry> sorted,
        IReadOnlyDictionary<string, string>? metadata,
        IProgress<long>? progress,
        ref long done,
        CancellationToken cancellationToken)
    {
        byte[] header = BuildHeader(sorted, metadata);
        long written = done;
        AtomicFile.Write(path, stream =>
        {
            Span<byte> length = stackalloc byte[8];
            BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)header.Length);
            stream.Write(length);
            stream.Write(header);
            foreach (var entry in sorted)
            {
                cancellationToken.ThrowIfCancellationRequested();
                long before = stream.Position;
                entry.WriteData(stream);
                if (stream.Position - before != entry.ByteLength)
                {
                    throw new InvalidOperationException($"{path}: tensor '{entry.Name}' wrote {stream.Position - before} bytes; expected {entry.ByteLength}");
                }

                written += entry.ByteLength;
                progress?.Report(written);
            }
        });
        done = written;
    }

    private static void WriteIndex(Stream stream, long totalSize, IReadOnlyDictionary<string, string>? metadata, SortedDictionary<string, string> weightMap)
    {
        using var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteStartObject("metadata");
        json.WriteNumber("total_size", totalSize);
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
        {
            if (key != "total_size")
            {
                json.WriteString(key, value);
            }
        }

        json.WriteEndObject();
        json.WriteStartObject("weight_map");
        foreach (var (tensor, file) in weightMap)
        {
            json.WriteString(tensor, file);
        }

        json.WriteEndObject();
        json.WriteEndObject();
    }

    private static IEnumerable<KeyValuePair<string, string>> WithFormat(IReadOnlyDictionary<string, string>? metadata)
    {
        var all = new SortedDictionary<string, string>(StringComparer.Ordinal);
        foreach (var (key, value) in metadata ?? new Dictionary<string, string>())
        {
            all[key] = value;
        }

        all.TryAdd("format", "pt");
        return all;
    }

    private static void DeleteStale(string directory, IReadOnlyCollection<string> keep)
    {
        var stale = new List<string> { SafeTensorsFolder.SingleFileName, SafeTensorsFolder.IndexFileName };
        stale.AddRange(Directory.EnumerateFiles(directory, "model-*-of-*.safetensors")
            .Select(Path.GetFileName)
            .OfType<string>()
            .Where(n => ShardName().IsMatch(n)));
        foreach (string name in stale.Where(n => !keep.Contains(n)))
        {
            File.Delete(Path.Combine(directory, name));
        }
    }

    [GeneratedRegex(@"^model-\d{5}-of-\d{5}\.safetensors$")]
    private static partial Regex ShardName();
}
