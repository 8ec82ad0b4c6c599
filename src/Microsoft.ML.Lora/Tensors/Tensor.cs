using System.Runtime.CompilerServices;
using System.Text;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// A contiguous, row-major tensor over 64-byte aligned native memory from <see cref="NativePool"/>.
/// Dispose returns the memory to the pool; a view (<see cref="View"/>) shares its owner's memory and
/// must not outlive it.
/// <para>An NF4 tensor (<see cref="DType.NF4"/>) keeps its logical shape; its storage holds the packed
/// 4-bit codes and the quantization state, laid out by <see cref="Nf4Layout"/>, and
/// <see cref="ByteLength"/> counts all of it.</para>
/// <para>A tensor of another <see cref="Tensors.Backend"/> (a GPU, libtorch) holds that backend's
/// <see cref="DeviceStorage"/> instead of host memory: its pointers and spans cannot be read
/// (<see cref="ToHost"/> copies it), while conversions, views and element reads go through its backend.</para>
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private readonly int[] shape;
    private readonly bool ownsMemory;
    private readonly Nf4Layout? nf4;
    private readonly DeviceStorage? storage;
    private void* data;
    private bool disposed;

    private Tensor(DType dtype, int[] shape, void* data, bool ownsMemory, Nf4Layout? nf4 = null)
    {
        DType = dtype;
        this.shape = shape;
        this.data = data;
        this.ownsMemory = ownsMemory;
        this.nf4 = nf4;
        Length = ElementCount(shape);
        Backend = Backend.Native;
    }

    private Tensor(Backend backend, DType dtype, int[] shape, DeviceStorage storage, Nf4Layout? nf4)
    {
        DType = dtype;
        this.shape = shape;
        this.storage = storage;
        this.nf4 = nf4;
        Length = ElementCount(shape);
        Backend = backend;
    }

    /// <summary>Where the tensor lives and which operations run on it.</summary>
    public Backend Backend { get; }

    /// <summary>Whether the storage is host memory (<see cref="Data"/> and the spans may be read).</summary>
    public bool IsHost => storage is null;

    /// <summary>The storage of a tensor of a device backend; throws for host tensors.</summary>
    public DeviceStorage Storage
    {
        get
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return storage ?? throw new InvalidOperationException($"{this} is a host tensor of the native backend: it has no device storage");
        }
    }

    /// <summary>
    /// Wraps a device backend's storage as a tensor (for <see cref="Tensors.Backend"/> implementations).
    /// The tensor owns <paramref name="storage"/> and disposes it.
    /// </summary>
    public static Tensor OnDevice(Backend backend, DType dtype, int[] shape, DeviceStorage storage, Nf4Layout? nf4 = null)
    {
        ArgumentNullException.ThrowIfNull(backend);
        ArgumentNullException.ThrowIfNull(storage);
        if ((dtype == DType.NF4) != (nf4 is not null))
        {
            throw new ArgumentException($"an NF4 tensor needs its layout and only NF4 has one; got dtype {dtype} with{(nf4 is null ? "out" : string.Empty)} a layout", nameof(nf4));
        }

        return new Tensor(backend, dtype, (int[])shape.Clone(), storage, nf4);
    }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => shape.Length;

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Size of the storage in bytes; for NF4 the codes and the quantization state together.</summary>
    public long ByteLength => nf4?.TotalBytes ?? Length * DType.SizeOf();

    /// <summary>Where the codes and quantization state of an NF4 tensor lie; throws for other dtypes.</summary>
    public Nf4Layout Nf4Layout => nf4 ?? throw new InvalidOperationException($"{this} has no NF4 layout: only NF4 tensors (made by Nf4.Quantize) have one");

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => disposed;

    /// <summary>The raw storage; host tensors only.</summary>
    public void* Data
    {
        get
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            if (storage is not null)
            {
                ThrowNotHost();
            }

            return data;
        }
    }

    /// <summary>The storage as floats; the tensor must be F32.</summary>
    public float* F32Ptr => (float*)Expect(DType.F32);

    /// <summary>The storage as bf16 bits; the tensor must be BF16.</summary>
    public ushort* Bf16Ptr => (ushort*)Expect(DType.BF16);

    /// <summary>The storage as a span of floats; the tensor must be F32.</summary>
    public Span<float> AsF32() => new(F32Ptr, checked((int)Length));

    /// <summary>The storage as a span of bf16 bits; the tensor must be BF16.</summary>
    public Span<ushort> AsBf16() => new(Bf16Ptr, checked((int)Length));

    /// <summary>The storage as bytes.</summary>
    public Span<byte> AsBytes() => new(Data, checked((int)ByteLength));

    /// <summary>Size of dimension <paramref name="axis"/> (negative counts from the end).</summary>
    public int Dim(int axis) => shape[axis < 0 ? shape.Length + axis : axis];

    /// <summary>A tensor with undefined contents.</summary>
    public static Tensor Empty(DType dtype, params int[] shape)
    {
        if (dtype == DType.NF4)
        {
            throw new ArgumentException(
                $"an NF4 tensor of shape {Format(shape)} cannot be made empty without choosing its quantization state: use Nf4.Quantize(source, doubleQuant), or Tensor.EmptyNf4(doubleQuant, shape) to fill codes and state yourself",
                nameof(dtype));
        }

        long n = ElementCount(shape);
        void* p = NativePool.Rent((nuint)(n * dtype.SizeOf()));
        return new Tensor(dtype, (int[])shape.Clone(), p, ownsMemory: true);
    }

    /// <summary>
    /// An NF4 tensor with undefined codes and state, laid out by <see cref="Nf4Layout"/> (for
    /// <see cref="Nf4.Quantize(Tensor, bool)"/> and loaders of already quantized weights).
    /// </summary>
    public static Tensor EmptyNf4(bool doubleQuant, params int[] shape)
    {
        var layout = new Nf4Layout(ElementCount(shape), doubleQuant);
        void* p = NativePool.Rent((nuint)layout.TotalBytes);
        return new Tensor(DType.NF4, (int[])shape.Clone(), p, ownsMemory: true, layout);
    }

    /// <summary>A tensor of zeros.</summary>
    public static Tensor Zeros(DType dtype, params int[] shape)
    {
        var t = Empty(dtype, shape);
        t.Clear();
        return t;
    }

    /// <summary>An F32 tensor holding a copy of <paramref name="values"/>.</summary>
    public static Tensor FromF32(ReadOnlySpan<float> values, params int[] shape)
    {
        var t = Empty(DType.F32, shape);
        if (t.Length != values.Length)
        {
            t.Dispose();
            throw new ArgumentException($"{values.Length} values do not fill shape {Format(shape)} ({ElementCount(shape)} elements)", nameof(values));
        }

        values.CopyTo(t.AsF32());
        return t;
    }

    /// <summary>Sets every byte to zero.</summary>
    public void Clear()
    {
        if (storage is not null)
        {
            Backend.Clear(this);
            return;
        }

        NativeMemoryClear(Data, (nuint)ByteLength);
    }

    /// <summary>A host copy of this tensor (same dtype and shape), whatever its backend; the caller owns it.</summary>
    public Tensor ToHost()
    {
        if (storage is not null)
        {
            return Backend.ToHost(this);
        }

        var copy = DType == DType.NF4 ? EmptyNf4(Nf4Layout.DoubleQuant, shape) : Empty(DType, shape);
        Buffer.MemoryCopy(Data, copy.Data, copy.ByteLength, ByteLength);
        return copy;
    }

    /// <summary>A non-owning view of the same memory with another shape of equal element count.</summary>
    public Tensor View(params int[] newShape)
    {
        if (ElementCount(newShape) != Length)
        {
            throw new ArgumentException($"cannot view shape {Format(shape)} as {Format(newShape)}: element counts differ", nameof(newShape));
        }

        if (storage is not null)
        {
            return Backend.View(this, (int[])newShape.Clone());
        }

        // NF4 blocks run over the flattened elements, so any reshape keeps the same layout.
        return new Tensor(DType, (int[])newShape.Clone(), Data, ownsMemory: false, nf4);
    }

    /// <summary>
    /// Copies this tensor's values into a new tensor of <paramref name="dtype"/> (F32↔BF16 rounds to nearest
    /// even; NF4 dequantizes). To make NF4, use <see cref="Nf4.Quantize(Tensor, bool)"/>, which asks for the state to keep.
    /// </summary>
    public Tensor To(DType dtype)
    {
        if (storage is not null)
        {
            return Backend.Convert(this, dtype);
        }

        if (dtype == DType.NF4)
        {
            if (DType == DType.NF4)
            {
                var copy = EmptyNf4(Nf4Layout.DoubleQuant, shape);
                CopyConverting(this, copy);
                return copy;
            }

            throw new ArgumentException($"{this}.To(NF4): quantizing needs a choice of state; use Nf4.Quantize(tensor, doubleQuant)", nameof(dtype));
        }

        var result = Empty(dtype, shape);
        CopyConverting(this, result);
        return result;
    }

    /// <summary>Copies <paramref name="source"/> into <paramref name="destination"/>, converting dtype; shapes' element counts must match.</summary>
    public static void CopyConverting(Tensor source, Tensor destination)
    {
        if (source.Length != destination.Length)
        {
            throw new ArgumentException($"cannot copy {Format(source.shape)} into {Format(destination.shape)}");
        }

        if (!source.IsHost || !destination.IsHost)
        {
            // Across backends: convert where the source lives, then one transfer.
            using var converted = source.DType == destination.DType ? null : source.To(destination.DType);
            var from = converted ?? source;
            using var host = from.IsHost ? null : from.ToHost();
            if (destination.IsHost)
            {
                CopyConverting(host ?? from, destination);
            }
            else
            {
                destination.Backend.CopyFromHost(host ?? from, destination);
            }

            return;
        }

        switch ((source.DType, destination.DType))
        {
            case (DType.F32, DType.F32):
            case (DType.BF16, DType.BF16):
                Buffer.MemoryCopy(source.Data, destination.Data, destination.ByteLength, source.ByteLength);
                break;
            case (DType.F32, DType.BF16):
                Bf16.FromFloat(source.AsF32(), destination.AsBf16());
                break;
            case (DType.BF16, DType.F32):
                Bf16.ToFloat(source.AsBf16(), destination.AsF32());
                break;
            case (DType.NF4, DType.F32):
            case (DType.NF4, DType.BF16):
                Nf4.DequantizeInto(source, destination);
                break;
            case (DType.NF4, DType.NF4) when source.Nf4Layout.DoubleQuant == destination.Nf4Layout.DoubleQuant:
                Buffer.MemoryCopy(source.Data, destination.Data, destination.ByteLength, source.ByteLength);
                break;
            default:
                throw new ArgumentException(
                    $"cannot copy {source} into {destination}: {(destination.DType == DType.NF4 ? "make NF4 with Nf4.Quantize(source, doubleQuant)" : "unsupported conversion")}");
        }
    }

    /// <summary>Element <paramref name="index"/> (flat) as a float, whatever the dtype.</summary>
    public float GetFloat(long index)
    {
        if ((ulong)index >= (ulong)Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"tensor has {Length} elements");
        }

        if (storage is not null)
        {
            using var host = ToHost();
            return host.GetFloat(index);
        }

        return DType switch
        {
            DType.F32 => ((float*)Data)[index],
            DType.BF16 => Bf16.ToFloat(((ushort*)Data)[index]),
            _ => Nf4.DequantizeElement(this, index),
        };
    }

    /// <summary>All values as a new float array (for tests and small tensors).</summary>
    public float[] ToFloatArray()
    {
        if (storage is not null)
        {
            using var host = ToHost();
            return host.ToFloatArray();
        }

        var result = new float[Length];
        for (long i = 0; i < Length; i++)
        {
            result[i] = GetFloat(i);
        }

        return result;
    }

    /// <summary>Returns owned memory to the pool. Idempotent.</summary>
    public void Dispose()
    {
        if (disposed)
        {
            return;
        }

        if (data != null && ownsMemory)
        {
            NativePool.Return(data, (nuint)ByteLength);
        }

        storage?.Dispose();
        data = null;
        disposed = true;
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor<{DType}{(storage is null ? string.Empty : $", {Backend.Device}")}{(nf4 is { DoubleQuant: true } ? ", double-quantized" : string.Empty)}>{Format(shape)}";

    /// <summary>Formats a shape as [a, b, c].</summary>
    public static string Format(ReadOnlySpan<int> dims)
    {
        var sb = new StringBuilder("[");
        for (int i = 0; i < dims.Length; i++)
        {
            sb.Append(i == 0 ? string.Empty : ", ").Append(dims[i]);
        }

        return sb.Append(']').ToString();
    }

    private static long ElementCount(int[] dims)
    {
        long n = 1;
        foreach (int d in dims)
        {
            if (d < 0)
            {
                throw new ArgumentException($"negative dimension in shape {Format(dims)}");
            }

            n = checked(n * d);
        }

        return n;
    }

    private void* Expect(DType expected)
    {
        if (DType != expected)
        {
            ThrowDType(expected);
        }

        return Data;
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowNotHost() => throw new InvalidOperationException(
        $"{this} lives on {Backend}; its memory cannot be read on the host: copy it with ToHost(), or run the operation through its Backend");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowDType(DType expected) => throw new InvalidOperationException(DType == DType.NF4
        ? $"{this} accessed as {expected}, but it holds 4-bit NF4 codes and block state: dequantize it with To(DType.{expected}), or multiply by the tensor itself through Backend.MatMul"
        : $"{this} accessed as {expected}");

    private static void NativeMemoryClear(void* p, nuint bytes) => System.Runtime.InteropServices.NativeMemory.Clear(p, bytes);
}
