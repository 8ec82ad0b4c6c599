using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// One tensor to write with <see cref="SafeTensorsWriter"/>: a <see cref="Tensor"/> (F32 or BF16, kept
/// alive by the caller until the write ends), raw little-endian bytes of any safetensors dtype (e.g. I64),
/// or a deferred tensor produced only when its bytes are written and disposed right after, so that
/// large checkpoints (e.g. merged weights) never need to be in memory at once.
/// </summary>
public sealed unsafe class SafeTensorEntry
{
    private readonly int[] shape;
    private readonly Tensor? tensor;
    private readonly ReadOnlyMemory<byte> bytes;
    private readonly Func<Tensor>? produce;

    private SafeTensorEntry(string name, string dtype, int[] shape, Tensor? tensor, ReadOnlyMemory<byte> bytes, Func<Tensor>? produce)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (name == SafeTensorsHeader.MetadataKey)
        {
            throw new ArgumentException($"'{SafeTensorsHeader.MetadataKey}' is reserved for the metadata map", nameof(name));
        }

        if (!SafeTensorsDTypes.TryGetSize(dtype, out int elementSize))
        {
            throw new ArgumentException($"tensor '{name}': unknown dtype '{dtype}'; expected one of {string.Join(", ", SafeTensorsDTypes.Known)}", nameof(dtype));
        }

        long count = 1;
        foreach (int d in shape)
        {
            if (d < 0)
            {
                throw new ArgumentException($"tensor '{name}': negative dimension in shape {Tensor.Format(shape)}", nameof(shape));
            }

            count = checked(count * d);
        }

        Name = name;
        DType = dtype;
        this.shape = (int[])shape.Clone();
        ByteLength = checked(count * elementSize);
        this.tensor = tensor;
        this.bytes = bytes;
        this.produce = produce;
    }

    /// <summary>Tensor name as written to the header.</summary>
    public string Name { get; }

    /// <summary>Header dtype string.</summary>
    public string DType { get; }

    /// <summary>Dimensions.</summary>
    public ReadOnlySpan<int> Shape => shape;

    /// <summary>Size of the data in bytes.</summary>
    public long ByteLength { get; }

    /// <summary>Writes <paramref name="tensor"/> in its own dtype. The tensor must stay undisposed until the write ends.</summary>
    public static SafeTensorEntry FromTensor(string name, Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        ObjectDisposedException.ThrowIf(tensor.IsDisposed, tensor);
        return new SafeTensorEntry(name, SafeTensorsDTypes.FromDType(tensor.DType), tensor.Shape.ToArray(), tensor, default, null);
    }

    /// <summary>Raw little-endian <paramref name="data"/> of <paramref name="dtype"/>; its length must equal elements × dtype size.</summary>
    public static SafeTensorEntry FromBytes(string name, string dtype, int[] shape, ReadOnlyMemory<byte> data)
    {
        var entry = new SafeTensorEntry(name, dtype, shape, null, data, null);
        if (data.Length != entry.ByteLength)
        {
            throw new ArgumentException($"tensor '{name}': {data.Length} bytes given; shape {Tensor.Format(shape)} of {dtype} needs {entry.ByteLength}", nameof(data));
        }

        return entry;
    }

    /// <summary>An I64 tensor of <paramref name="values"/> (e.g. token ids or a step counter).</summary>
    public static SafeTensorEntry FromInt64(string name, int[] shape, ReadOnlySpan<long> values)
    {
        var data = new byte[values.Length * sizeof(long)];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteInt64LittleEndian(data.AsSpan(i * sizeof(long)), values[i]);
        }

        return FromBytes(name, SafeTensorsDTypes.I64, shape, data);
    }

    /// <summary>An F32 tensor of <paramref name="values"/>.</summary>
    public static SafeTensorEntry FromFloats(string name, int[] shape, ReadOnlySpan<float> values)
    {
        var data = MemoryMarshal.AsBytes(values).ToArray();
        return FromBytes(name, SafeTensorsDTypes.F32, shape, data);
    }

    /// <summary>
    /// A tensor of <paramref name="dtype"/> and <paramref name="shape"/> that <paramref name="produce"/> creates
    /// when the writer reaches it; the writer disposes it after writing its bytes.
    /// </summary>
    public static SafeTensorEntry Deferred(string name, DType dtype, int[] shape, Func<Tensor> produce)
    {
        ArgumentNullException.ThrowIfNull(produce);
        return new SafeTensorEntry(name, SafeTensorsDTypes.FromDType(dtype), shape, null, default, produce);
    }

    /// <summary>Writes the data bytes to <paramref name="stream"/>.</summary>
    internal void WriteData(Stream stream)
    {
        if (produce != null)
        {
            using var produced = produce();
            if (SafeTensorsDTypes.FromDType(produced.DType) != DType || !produced.Shape.SequenceEqual(shape))
            {
                throw new InvalidOperationException($"tensor '{Name}': producer returned {produced}; declared {DType}{Tensor.Format(shape)}");
            }

            WriteTensor(produced, stream);
        }
        else if (tensor != null)
        {
            WriteTensor(tensor, stream);
        }
        else
        {
            stream.Write(bytes.Span);
        }
    }

    private static void WriteTensor(Tensor tensor, Stream stream)
    {
        // A device tensor is copied to the host once, then written like any other.
        if (!tensor.IsHost)
        {
            using var host = tensor.ToHost();
            WriteTensor(host, stream);
            return;
        }

        // Chunks keep each span under int.MaxValue bytes for tensors over 2 GiB.
        const int Chunk = 1 << 24;
        byte* p = (byte*)tensor.Data;
        for (long offset = 0; offset < tensor.ByteLength; offset += Chunk)
        {
            int n = (int)Math.Min(Chunk, tensor.ByteLength - offset);
            stream.Write(new ReadOnlySpan<byte>(p + offset, n));
        }
    }
}
