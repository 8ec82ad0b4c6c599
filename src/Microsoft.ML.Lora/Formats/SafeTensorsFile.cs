using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.CompilerServices;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// A read-only, memory-mapped safetensors file. <see cref="Open"/> validates the whole header up front
/// (see <see cref="SafeTensorsHeader.Parse"/>), so later reads never see out-of-range offsets.
/// Layout: u64 little-endian header length N, N bytes of UTF-8 JSON, then the data section that the
/// entries' data_offsets index into. Reads may run concurrently; dispose only after they finish.
/// Malformed files throw <see cref="InvalidDataException"/> naming the file (and the tensor).
/// </summary>
public sealed unsafe class SafeTensorsFile : IDisposable
{
    private readonly MemoryMappedFile map;
    private readonly MemoryMappedViewAccessor view;
    private readonly Dictionary<string, SafeTensorInfo> tensors;
    private byte* data;

    private SafeTensorsFile(string path, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* data, Dictionary<string, SafeTensorInfo> tensors, Dictionary<string, string> metadata)
    {
        Path = path;
        this.map = map;
        this.view = view;
        this.data = data;
        this.tensors = tensors;
        Tensors = tensors.AsReadOnly();
        Metadata = metadata.AsReadOnly();
    }

    /// <summary>Full path of the file.</summary>
    public string Path { get; }

    /// <summary>Header entries by tensor name.</summary>
    public IReadOnlyDictionary<string, SafeTensorInfo> Tensors { get; }

    /// <summary>The header's <c>__metadata__</c> map (empty when absent).</summary>
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Maps <paramref name="path"/> and validates its header.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">The file is not a valid safetensors file.</exception>
    public static SafeTensorsFile Open(string path)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("safetensors data is little-endian; big-endian hosts are not supported");
        }

        string full = System.IO.Path.GetFullPath(path);
        var stream = new FileStream(full, FileMode.Open, FileAccess.Read, FileShare.Read);
        MemoryMappedFile? map = null;
        MemoryMappedViewAccessor? view = null;
        bool acquired = false;
        try
        {
            long fileLength = stream.Length;
            if (fileLength < 8)
            {
                throw new InvalidDataException($"{full}: file is {fileLength} bytes; expected at least 8 (the header length) — truncated or not a safetensors file");
            }

            map = MemoryMappedFile.CreateFromFile(stream, null, 0, MemoryMappedFileAccess.Read, HandleInheritability.None, leaveOpen: false);
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* start = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref start);
            acquired = true;
            start += view.PointerOffset;

            ulong headerLength = BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(start, 8));
            if (headerLength > (ulong)(fileLength - 8))
            {
                throw new InvalidDataException($"{full}: header length {headerLength} exceeds the {fileLength - 8} bytes after the length field — truncated or not a safetensors file");
            }

            if (headerLength > SafeTensorsHeader.MaxHeaderBytes)
            {
                throw new InvalidDataException($"{full}: header length {headerLength} exceeds the {SafeTensorsHeader.MaxHeaderBytes}-byte limit of the format");
            }

            long dataLength = fileLength - 8 - (long)headerLength;
            var header = new ReadOnlySpan<byte>(start + 8, (int)headerLength);
            var (entries, metadata) = SafeTensorsHeader.Parse(header, dataLength, full);
            return new SafeTensorsFile(full, map, view, start + 8 + (long)headerLength, entries, metadata);
        }
        catch
        {
            if (acquired)
            {
                view!.SafeMemoryMappedViewHandle.ReleasePointer();
            }

            view?.Dispose();
            map?.Dispose();
            stream.Dispose();
            throw;
        }
    }

    /// <summary>Whether the file holds <paramref name="name"/>.</summary>
    public bool Contains(string name) => tensors.ContainsKey(name);

    /// <summary>The header entry of <paramref name="name"/>.</summary>
    /// <exception cref="InvalidDataException">No such tensor in this file.</exception>
    public SafeTensorInfo Info(string name)
    {
        if (tensors.TryGetValue(name, out var info))
        {
            return info;
        }

        throw new InvalidDataException($"tensor '{name}' missing in {Path} ({tensors.Count} tensors) — is this checkpoint for another architecture?");
    }

    /// <summary>
    /// Pointer to the raw little-endian bytes of <paramref name="name"/> (<see cref="SafeTensorInfo.ByteLength"/>
    /// bytes, any alignment). Valid until this file is disposed.
    /// </summary>
    public byte* GetPointer(string name)
    {
        var info = Info(name);
        return DataStart + info.Begin;
    }

    /// <summary>The raw bytes of <paramref name="name"/>; valid until this file is disposed. Tensors over 2 GiB need <see cref="GetPointer"/>.</summary>
    public ReadOnlySpan<byte> GetBytes(string name)
    {
        var info = Info(name);
        if (info.ByteLength > int.MaxValue)
        {
            throw new NotSupportedException($"{Path}: tensor '{name}' has {info.ByteLength} bytes, too many for a span; use GetPointer");
        }

        return new ReadOnlySpan<byte>(DataStart + info.Begin, (int)info.ByteLength);
    }

    /// <summary>
    /// Reads a float tensor (F32, F16, BF16 or F64 in the file) into a new tensor of <paramref name="target"/>
    /// (F32 or BF16), rounding to nearest even where the target is narrower. The caller owns the result.
    /// </summary>
    public Tensor Read(string name, DType target)
    {
        var info = Info(name);
        if (!SafeTensorsDTypes.IsFloat(info.DType))
        {
            throw new InvalidDataException($"{Path}: tensor '{name}' has dtype {info.DType}; expected a float dtype (F32, F16, BF16, F64) to read as {target}");
        }

        long count = ElementCount(info);
        var result = Tensor.Empty(target, info.Shape);
        try
        {
            if (result.Length != count)
            {
                throw new InvalidOperationException($"{Path}: the Shape array of tensor '{name}' was modified after Open");
            }

            byte* src = DataStart + info.Begin;
            switch (target)
            {
                case DType.F32:
                    FloatConversion.ToF32(info.DType, src, result.F32Ptr, result.Length);
                    break;
                case DType.BF16:
                    FloatConversion.ToBf16(info.DType, src, result.Bf16Ptr, result.Length);
                    break;
                default:
                    throw new ArgumentOutOfRangeException(nameof(target), target, "read targets are F32 or BF16");
            }
        }
        catch
        {
            result.Dispose();
            throw;
        }

        return result;
    }

    /// <summary>As <see cref="Read(string, DType)"/>, first checking that the tensor has <paramref name="expectedShape"/>.</summary>
    /// <exception cref="InvalidDataException">The shape differs; the message names file, tensor and both shapes.</exception>
    public Tensor Read(string name, DType target, ReadOnlySpan<int> expectedShape)
    {
        CheckShape(Info(name), expectedShape, Path);
        return Read(name, target);
    }

    /// <summary>All values of a float tensor (any float dtype) as floats; for small tensors and tests.</summary>
    public float[] ReadFloats(string name)
    {
        var info = Info(name);
        if (!SafeTensorsDTypes.IsFloat(info.DType))
        {
            throw new InvalidDataException($"{Path}: tensor '{name}' has dtype {info.DType}; expected a float dtype (F32, F16, BF16, F64)");
        }

        var result = new float[ElementCount(info)];
        fixed (float* dst = result)
        {
            FloatConversion.ToF32(info.DType, DataStart + info.Begin, dst, result.LongLength);
        }

        return result;
    }

    /// <summary>All values of an integer tensor (I64, or I32 widened) as longs.</summary>
    public long[] ReadInt64(string name)
    {
        var info = Info(name);
        var result = new long[ElementCount(info)];
        byte* src = DataStart + info.Begin;
        switch (info.DType)
        {
            case SafeTensorsDTypes.I64:
                for (long i = 0; i < result.LongLength; i++)
                {
                    result[i] = Unsafe.ReadUnaligned<long>(src + (8 * i));
                }

                break;
            case SafeTensorsDTypes.I32:
                for (long i = 0; i < result.LongLength; i++)
                {
                    result[i] = Unsafe.ReadUnaligned<int>(src + (4 * i));
                }

                break;
            default:
                throw new InvalidDataException($"{Path}: tensor '{name}' has dtype {info.DType}; expected I64 or I32");
        }

        return result;
    }

    /// <summary>Unmaps the file. Idempotent.</summary>
    public void Dispose()
    {
        if (data == null)
        {
            return;
        }

        data = null;
        view.SafeMemoryMappedViewHandle.ReleasePointer();
        view.Dispose();
        map.Dispose();
    }

    internal static void CheckShape(SafeTensorInfo info, ReadOnlySpan<int> expected, string where)
    {
        if (!expected.SequenceEqual(info.Shape))
        {
            throw new InvalidDataException($"{where}: tensor '{info.Name}' has shape {info.ShapeText}; expected {Tensor.Format(expected)}");
        }
    }

    // From the byte range, which callers cannot change (unlike the Shape array they can reach), so a
    // read never leaves the validated range.
    private static long ElementCount(SafeTensorInfo info)
    {
        SafeTensorsDTypes.TryGetSize(info.DType, out int size);
        return info.ByteLength / size;
    }

    private byte* DataStart
    {
        get
        {
            ObjectDisposedException.ThrowIf(data == null, this);
            return data;
        }
    }
}
