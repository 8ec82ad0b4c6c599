using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Dequantizes runs of NF4 elements to F32: the hot loop of NF4 GEMM packing and of
/// <see cref="Tensor.To"/>. The AVX-512, AVX2 and scalar paths compute the same single F32 multiply
/// Table[code] · absmax per element, so they agree bit for bit.
/// </summary>
internal static unsafe class Nf4Decode
{
    // Per-lane right shifts that pick the low nibble for even elements and the high one for odd.
    private static readonly Vector512<uint> NibbleShifts = Vector512.Create(0u, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);

    private static readonly Vector512<float> TableVector = Vector512.Create(Nf4.Table);

    private static readonly Vector256<uint> NibbleShifts8 = Vector256.Create(0u, 4, 0, 4, 0, 4, 0, 4);

    private static readonly Vector256<float> TableLow = Vector256.Create(Nf4.Table[..8]);

    private static readonly Vector256<float> TableHigh = Vector256.Create(Nf4.Table[8..]);

    /// <summary>
    /// Elements [start, start+count) into dst[0..count), on the vector path of <paramref name="isa"/>
    /// (<see cref="GemmIsa.Avx512"/>, <see cref="GemmIsa.Avx2"/>, otherwise scalar; the caller checks support).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(Nf4Layout layout, byte* data, long start, int count, float* dst, GemmIsa isa)
    {
        bool avx512 = isa == GemmIsa.Avx512, avx2 = isa == GemmIsa.Avx2;
        while (count > 0)
        {
            long block = start / Nf4Layout.BlockSize;
            int run = (int)Math.Min(count, ((block + 1) * Nf4Layout.BlockSize) - start);
            float absmax = BlockAbsmax(layout, data, block);
            int i = 0;
            if (avx512 && run >= 16)
            {
                if ((start & 1) != 0)
                {
                    dst[0] = Element(data, start, absmax);
                    i = 1;
                }

                Vector512<float> table = TableVector;
                Vector512<uint> shifts = NibbleShifts;
                Vector512<float> scale = Vector512.Create(absmax);
                for (; i + 16 <= run; i += 16)
                {
                    Decode16(data + ((start + i) >> 1), table, shifts, scale).Store(dst + i);
                }
            }
            else if (avx2 && run >= 8)
            {
                if ((start & 1) != 0)
                {
                    dst[0] = Element(data, start, absmax);
                    i = 1;
                }

                Vector256<float> low = TableLow, high = TableHigh;
                Vector256<uint> shifts = NibbleShifts8;
                Vector256<float> scale = Vector256.Create(absmax);
                for (; i + 8 <= run; i += 8)
                {
                    Decode8(data + ((start + i) >> 1), low, high, shifts, scale).Store(dst + i);
                }
            }

            for (; i < run; i++)
            {
                dst[i] = Element(data, start + i, absmax);
            }

            start += run;
            dst += run;
            count -= run;
        }
    }

    /// <summary>The 4-bit code of element <paramref name="index"/> (low nibble first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Code(byte* codes, long index) => (codes[index >> 1] >> (int)((index & 1) << 2)) & 0xF;

    /// <summary>The absmax block <paramref name="block"/> dequantizes with (see <see cref="Nf4"/> for the double-quantized formula).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float BlockAbsmax(Nf4Layout layout, byte* data, long block)
    {
        if (!layout.DoubleQuant)
        {
            return ((float*)(data + layout.AbsmaxOffset))[block];
        }

        float q = ((sbyte*)(data + layout.AbsmaxOffset))[block];
        float scale = ((float*)(data + layout.ScalesOffset))[block / Nf4Layout.GroupSize];
        float mean = *(float*)(data + layout.MeanOffset);
        float a = (q * scale / 127f) + mean;
        return a < 0 ? 0 : a;
    }

    // 4 bytes → 8 elements. vpermps on 8 lanes reads the low 3 bits of each index, so both halves of
    // the table are looked up and bit 3 of the code, moved to the sign bit, picks one with blendv.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<float> Decode8(byte* packed, Vector256<float> low, Vector256<float> high, Vector256<uint> shifts, Vector256<float> scale)
    {
        Vector128<byte> bytes = Vector128.CreateScalar(Unsafe.ReadUnaligned<uint>(packed)).AsByte();
        Vector256<uint> lanes = Avx2.ConvertToVector256Int32(Sse2.UnpackLow(bytes, bytes)).AsUInt32();
        Vector256<int> index = Avx2.ShiftRightLogicalVariable(lanes, shifts).AsInt32();
        Vector256<float> pick = Avx2.ShiftLeftLogical(index, 28).AsSingle();
        Vector256<float> value = Avx.BlendVariable(Avx2.PermuteVar8x32(low, index), Avx2.PermuteVar8x32(high, index), pick);
        return value * scale;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Element(byte* codes, long index, float absmax) => Nf4.Table[Code(codes, index)] * absmax;

    // 8 bytes → 16 elements: duplicate each byte into two lanes, shift odd lanes right by 4, and let
    // vpermps look the code up in the 16-float table (it reads only the low 4 bits of each index, so the
    // even lanes' high nibble needs no mask).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<float> Decode16(byte* packed, Vector512<float> table, Vector512<uint> shifts, Vector512<float> scale)
    {
        Vector128<byte> bytes = Vector128.CreateScalar(Unsafe.ReadUnaligned<ulong>(packed)).AsByte();
        Vector512<uint> lanes = Avx512F.ConvertToVector512UInt32(Sse2.UnpackLow(bytes, bytes));
        Vector512<int> index = Avx512F.ShiftRightLogicalVariable(lanes, shifts).AsInt32();
        return Avx512F.PermuteVar16x32(table, index) * scale;
    }
}
