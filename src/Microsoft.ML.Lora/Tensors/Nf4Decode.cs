using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Dequantizes runs of NF4 elements to F32: the hot loop of NF4 GEMM packing and of
/// <see cref="Tensor.To"/>. The AVX-512 path and the scalar path compute the same single F32 multiply
/// Table[code] · absmax per element, so they agree bit for bit.
/// </summary>
internal static unsafe class Nf4Decode
{
    // Per-lane right shifts that pick the low nibble for even elements and the high one for odd.
    private static readonly Vector512<uint> NibbleShifts = Vector512.Create(0u, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4, 0, 4);

    private static readonly Vector512<float> TableVector = Vector512.Create(Nf4.Table);

    /// <summary>Elements [start, start+count) into dst[0..count); <paramref name="avx512"/> picks the vector path.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void Run(Nf4Layout layout, byte* data, long start, int count, float* dst, bool avx512)
    {
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
