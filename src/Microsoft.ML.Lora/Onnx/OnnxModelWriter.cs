using Google.Protobuf;
using F = Microsoft.ML.Lora.Onnx.OnnxProtoFields;

namespace Microsoft.ML.Lora.Onnx;

/// <summary>
/// Writes an <see cref="OnnxGraph"/> as an ONNX ModelProto file, optionally with initializers in
/// <c>&lt;file&gt;.data</c>. Both files are written to temporary names in the target folder and renamed
/// only when complete, so a failed save leaves nothing behind and never a half-written model.
/// </summary>
public static class OnnxModelWriter
{
    /// <summary>Offsets in the external data file are multiples of this, so runtimes can memory-map each tensor (page size).</summary>
    public const int ExternalDataAlignment = 4096;

    /// <summary>
    /// Integer initializers with at most this many elements always stay inline: they are shapes and axes that
    /// onnx shape inference reads as data, and onnx 1.12 fails with "Cannot parse data from external tensors" otherwise.
    /// </summary>
    public const int InlineShapeTensorMaxElements = 64;

    /// <summary>
    /// Saves the model; throws <see cref="IOException"/> naming the path when the files cannot be written.
    /// Cancellation is checked before each initializer; a cancelled save leaves no files.
    /// </summary>
    public static void Save(OnnxGraph graph, string path, OnnxSaveOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(graph);
        ArgumentException.ThrowIfNullOrEmpty(path);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        graph.Validate();

        string fullPath = Path.GetFullPath(path);
        string folder = Path.GetDirectoryName(fullPath) ?? throw new IOException($"cannot save ONNX model to '{fullPath}': no parent folder");
        string fileName = Path.GetFileName(fullPath);
        string dataFileName = fileName + ".data";
        string dataPath = Path.Combine(folder, dataFileName);

        ExternalLocation?[] locations = PlanExternalData(graph, options, dataFileName);
        bool anyExternal = Array.Exists(locations, l => l is not null);

        string token = Guid.NewGuid().ToString("N");
        string tempModel = Path.Combine(folder, $".{fileName}.{token}.tmp");
        string tempData = Path.Combine(folder, $".{dataFileName}.{token}.tmp");

        // Missing parent folders are made, and removed again if the save fails.
        string? created = null;
        for (string? f = folder; f is not null && !Directory.Exists(f) && !File.Exists(f); f = Path.GetDirectoryName(f))
        {
            created = f;
        }

        try
        {
            Directory.CreateDirectory(folder);
            if (anyExternal)
            {
                WriteExternalData(graph, locations, tempData, cancellationToken);
            }

            WriteModel(graph, options, locations, tempModel, cancellationToken);
            if (anyExternal)
            {
                File.Move(tempData, dataPath, overwrite: true);
            }

            File.Move(tempModel, fullPath, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(tempModel);
            TryDelete(tempData);
            TryDeleteFolder(created);
            throw new IOException($"cannot save ONNX model to '{fullPath}'{(anyExternal ? $" with external data '{dataPath}'" : "")}: {e.Message}", e);
        }
        catch
        {
            TryDelete(tempModel);
            TryDelete(tempData);
            TryDeleteFolder(created);
            throw;
        }
    }

    private static void TryDeleteFolder(string? folder)
    {
        try
        {
            if (folder is not null && Directory.Exists(folder))
            {
                Directory.Delete(folder, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the error being reported matters more.
        }
    }

    /// <summary>Decides which initializers go external and where; null entries stay inline.</summary>
    internal static ExternalLocation?[] PlanExternalData(OnnxGraph graph, OnnxSaveOptions options, string dataFileName)
    {
        var locations = new ExternalLocation?[graph.Initializers.Count];
        bool external = options.ExternalData || ModelSize(graph, options, locations) > options.InlineLimitBytes;
        if (!external)
        {
            return locations;
        }

        long position = 0;
        for (int i = 0; i < locations.Length; i++)
        {
            OnnxTensor tensor = graph.Initializers[i];
            long length = tensor.RawData.Length;
            if (length >= options.ExternalDataThreshold && !IsShapeTensor(tensor))
            {
                long offset = (position + ExternalDataAlignment - 1) / ExternalDataAlignment * ExternalDataAlignment;
                locations[i] = new ExternalLocation(dataFileName, offset, length);
                position = offset + length;
            }
        }

        long size = ModelSize(graph, options, locations);
        if (size > OnnxSaveOptions.ProtobufLimitBytes)
        {
            throw new InvalidOperationException(
                $"the ONNX model is {size} bytes even with external data, over protobuf's 2 GiB limit — lower ExternalDataThreshold ({options.ExternalDataThreshold})");
        }

        return locations;
    }

    private static bool IsShapeTensor(OnnxTensor tensor) =>
        tensor.ElementType is OnnxElementType.Int64 or OnnxElementType.Int32
        && tensor.RawData.Length <= InlineShapeTensorMaxElements * tensor.ElementType.SizeInBytes();

    private static void WriteExternalData(OnnxGraph graph, ExternalLocation?[] locations, string tempData, CancellationToken cancellationToken)
    {
        using var stream = new FileStream(tempData, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        Span<byte> padding = stackalloc byte[ExternalDataAlignment];
        padding.Clear();
        for (int i = 0; i < locations.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (locations[i] is not { } location)
            {
                continue;
            }

            stream.Write(padding[..checked((int)(location.Offset - stream.Position))]);
            stream.Write(graph.Initializers[i].RawData.Span);
        }

        stream.Flush(flushToDisk: true);
    }

    private static void WriteModel(OnnxGraph graph, OnnxSaveOptions options, ExternalLocation?[] locations, string tempModel, CancellationToken cancellationToken)
    {
        ModelParts parts = Encode(graph, options, locations);
        using var stream = new FileStream(tempModel, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        using (var output = new CodedOutputStream(stream, leaveOpen: true))
        {
            output.WriteTag(F.Model.IrVersion, WireFormat.WireType.Varint);
            output.WriteInt64(F.IrVersion);
            OnnxProtoEncoder.WriteString(output, F.Model.ProducerName, options.ProducerName);
            if (options.ProducerVersion is { } version)
            {
                OnnxProtoEncoder.WriteString(output, F.Model.ProducerVersion, version);
            }

            output.WriteTag(F.Model.Graph, WireFormat.WireType.LengthDelimited);
            output.WriteLength(checked((int)parts.GraphSize));
            WriteGraphBody(output, graph, parts, cancellationToken);
            foreach (byte[] opset in parts.Opsets)
            {
                OnnxProtoEncoder.WriteMessage(output, F.Model.OpsetImport, opset);
            }

            foreach (byte[] entry in parts.Metadata)
            {
                OnnxProtoEncoder.WriteMessage(output, F.Model.MetadataProps, entry);
            }

            output.Flush();
        }

        stream.Flush(flushToDisk: true);
    }

    private static void WriteGraphBody(CodedOutputStream output, OnnxGraph graph, ModelParts parts, CancellationToken cancellationToken)
    {
        foreach (byte[] node in parts.Nodes)
        {
            OnnxProtoEncoder.WriteMessage(output, F.Graph.Node, node);
        }

        OnnxProtoEncoder.WriteString(output, F.Graph.Name, graph.Name);
        for (int i = 0; i < parts.TensorHeaders.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            output.WriteTag(F.Graph.Initializer, WireFormat.WireType.LengthDelimited);
            output.WriteLength(checked((int)parts.TensorSizes[i]));
            foreach (byte b in parts.TensorHeaders[i])
            {
                output.WriteRawTag(b);
            }

            if (!parts.External[i])
            {
                output.WriteTag(F.Tensor.RawData, WireFormat.WireType.LengthDelimited);
                output.WriteBytes(UnsafeByteOperations.UnsafeWrap(graph.Initializers[i].RawData));
            }
        }

        WriteAll(output, F.Graph.Input, parts.Inputs);
        WriteAll(output, F.Graph.Output, parts.Outputs);
        WriteAll(output, F.Graph.ValueInfo, parts.ValueInfos);
    }

    private static void WriteAll(CodedOutputStream output, int field, byte[][] messages)
    {
        foreach (byte[] message in messages)
        {
            OnnxProtoEncoder.WriteMessage(output, field, message);
        }
    }

    private static long ModelSize(OnnxGraph graph, OnnxSaveOptions options, ExternalLocation?[] locations)
    {
        ModelParts parts = Encode(graph, options, locations);
        long size = parts.GraphSize + EmbeddedSize(F.Model.Graph, parts.GraphSize);
        size += SizeOfAll(F.Model.OpsetImport, parts.Opsets) + SizeOfAll(F.Model.MetadataProps, parts.Metadata);
        return size + 64 + options.ProducerName.Length * 3L + (options.ProducerVersion?.Length ?? 0) * 3L;
    }

    private static ModelParts Encode(OnnxGraph graph, OnnxSaveOptions options, ExternalLocation?[] locations)
    {
        var headers = new byte[graph.Initializers.Count][];
        var tensorSizes = new long[headers.Length];
        var external = new bool[headers.Length];
        for (int i = 0; i < headers.Length; i++)
        {
            headers[i] = OnnxProtoEncoder.TensorHeader(graph.Initializers[i], locations[i]);
            external[i] = locations[i] is not null;
            long raw = graph.Initializers[i].RawData.Length;
            tensorSizes[i] = headers[i].Length + (external[i] ? 0 : CodedOutputStream.ComputeTagSize(F.Tensor.RawData) + LengthSize(raw) + raw);
        }

        var opsets = new List<byte[]> { OnnxProtoEncoder.OperatorSetId("", options.Opset) };
        foreach ((string domain, long version) in options.ExtraOpsets)
        {
            opsets.Add(OnnxProtoEncoder.OperatorSetId(domain, version));
        }

        var parts = new ModelParts(
            Nodes: graph.Nodes.Select(OnnxProtoEncoder.Node).ToArray(),
            Inputs: graph.Inputs.Select(OnnxProtoEncoder.ValueInfo).ToArray(),
            Outputs: graph.Outputs.Select(OnnxProtoEncoder.ValueInfo).ToArray(),
            ValueInfos: graph.ValueInfos.Select(OnnxProtoEncoder.ValueInfo).ToArray(),
            TensorHeaders: headers,
            TensorSizes: tensorSizes,
            External: external,
            Opsets: opsets.ToArray(),
            Metadata: options.Metadata.Select(kv => OnnxProtoEncoder.StringEntry(kv.Key, kv.Value)).ToArray());

        long graphSize = SizeOfAll(F.Graph.Node, parts.Nodes) + SizeOfAll(F.Graph.Input, parts.Inputs)
            + SizeOfAll(F.Graph.Output, parts.Outputs) + SizeOfAll(F.Graph.ValueInfo, parts.ValueInfos)
            + CodedOutputStream.ComputeTagSize(F.Graph.Name) + CodedOutputStream.ComputeStringSize(graph.Name);
        foreach (long tensorSize in tensorSizes)
        {
            graphSize += EmbeddedSize(F.Graph.Initializer, tensorSize) + tensorSize;
        }

        return parts with { GraphSize = graphSize };
    }

    private static long SizeOfAll(int field, byte[][] messages)
    {
        long size = 0;
        foreach (byte[] message in messages)
        {
            size += EmbeddedSize(field, message.Length) + message.Length;
        }

        return size;
    }

    /// <summary>Tag plus length prefix of an embedded field, without the payload.</summary>
    private static long EmbeddedSize(int field, long length) => CodedOutputStream.ComputeTagSize(field) + LengthSize(length);

    private static int LengthSize(long length) => CodedOutputStream.ComputeUInt64Size((ulong)length);

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Best effort: the original error is the one worth reporting.
        }
    }

    private sealed record ModelParts(
        byte[][] Nodes,
        byte[][] Inputs,
        byte[][] Outputs,
        byte[][] ValueInfos,
        byte[][] TensorHeaders,
        long[] TensorSizes,
        bool[] External,
        byte[][] Opsets,
        byte[][] Metadata)
    {
        public long GraphSize { get; init; }
    }
}
