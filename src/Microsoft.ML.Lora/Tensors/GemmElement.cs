using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Reads GEMM operand elements of storage type <typeparamref name="T"/> as floats. Packing is generic
/// over this so that a BF16 weight is converted while it is packed, never as a whole matrix.
/// </summary>
internal unsafe interface IGemmElement<T>
    where T : unmanaged
{
    /// <summary>One element.</summary>
    static abstract float Read(T* p);

    /// <summary>8 consecutive elements; needs AVX2.</summary>
    static abstract Vector256<float> Read8(T* p);

    /// <summary>16 consecutive elements; needs AVX-512F.</summary>
    static abstract Vector512<float> Read16(T* p);
}

/// <summary>F32 storage.</summary>
internal readonly unsafe struct F32Element : IGemmElement<float>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(float* p) => *p;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Read8(float* p) => Vector256.Load(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Read16(float* p) => Vector512.Load(p);
}

/// <summary>BF16 storage: the bits are the upper half of a float (<see cref="Bf16.ToFloat(ushort)"/>).</summary>
internal readonly unsafe struct Bf16Element : IGemmElement<ushort>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float Read(ushort* p) => Bf16.ToFloat(*p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Read8(ushort* p) =>
        Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(Vector128.Load(p)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> Read16(ushort* p) =>
        Avx512F.ShiftLeftLogical(Avx512F.ConvertToVector512Int32(Vector256.Load(p)), 16).AsSingle();
}
