using System.Runtime.CompilerServices;
using System.Text;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// A contiguous, row-major tensor over 64-byte aligned native memory from <see cref="NativePool"/>.
/// Dispose returns the memory to the pool; a view (<see cref="View"/>) shares its owner's memory and
/// must not outlive it.
/// </summary>
public sealed unsafe class Tensor : IDisposable
{
    private readonly int[] shape;
    private readonly bool ownsMemory;
    private void* data;

    private Tensor(DType dtype, int[] shape, void* data, bool ownsMemory)
    {
        DType = dtype;
        this.shape = shape;
        this.data = data;
        this.ownsMemory = ownsMemory;
        Length = ElementCount(shape);
    }

    /// <summary>Element type.</summary>
    public DType DType { get; }

    /// <summary>Dimensions, outermost first.</summary>
    public ReadOnlySpan<int> Shape => shape;

    /// <summary>Number of dimensions.</summary>
    public int Rank => shape.Length;

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Size of the storage in bytes.</summary>
    public long ByteLength => Length * DType.SizeOf();

    /// <summary>Whether <see cref="Dispose"/> has run.</summary>
    public bool IsDisposed => data == null;

    /// <summary>The raw storage.</summary>
    public void* Data
    {
        get
        {
            ObjectDisposedException.ThrowIf(data == null, this);
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
        long n = ElementCount(shape);
        void* p = NativePool.Rent((nuint)(n * dtype.SizeOf()));
        return new Tensor(dtype, (int[])shape.Clone(), p, ownsMemory: true);
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
    public void Clear() => NativeMemoryClear(Data, (nuint)ByteLength);

    /// <summary>A non-owning view of the same memory with another shape of equal element count.</summary>
    public Tensor View(params int[] newShape)
    {
        if (ElementCount(newShape) != Length)
        {
            throw new ArgumentException($"cannot view shape {Format(shape)} as {Format(newShape)}: element counts differ", nameof(newShape));
        }

        return new Tensor(DType, (int[])newShape.Clone(), Data, ownsMemory: false);
    }

    /// <summary>Copies this tensor's values into a new tensor of <paramref name="dtype"/> (F32↔BF16 rounds to nearest even).</summary>
    public Tensor To(DType dtype)
    {
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
        }
    }

    /// <summary>Element <paramref name="index"/> (flat) as a float, whatever the dtype.</summary>
    public float GetFloat(long index)
    {
        if ((ulong)index >= (ulong)Length)
        {
            throw new ArgumentOutOfRangeException(nameof(index), index, $"tensor has {Length} elements");
        }

        return DType == DType.F32 ? ((float*)Data)[index] : Bf16.ToFloat(((ushort*)Data)[index]);
    }

    /// <summary>All values as a new float array (for tests and small tensors).</summary>
    public float[] ToFloatArray()
    {
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
        if (data != null && ownsMemory)
        {
            NativePool.Return(data, (nuint)ByteLength);
        }

        data = null;
    }

    /// <inheritdoc/>
    public override string ToString() => $"Tensor<{DType}>{Format(shape)}";

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
    private void ThrowDType(DType expected) => throw new InvalidOperationException($"{this} accessed as {expected}");

    private static void NativeMemoryClear(void* p, nuint bytes) => System.Runtime.InteropServices.NativeMemory.Clear(p, bytes);
}
