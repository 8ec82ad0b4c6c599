using System.Runtime.CompilerServices;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// Converts raw little-endian safetensors data (any alignment) of a float dtype into F32 or BF16 storage.
/// Every conversion rounds once, to nearest even: F32→BF16 through <see cref="Bf16.FromFloat(float)"/>,
/// F16→F32 is exact, F64→F32 is the hardware conversion, F64→BF16 rounds to odd on the way through F32.
/// </summary>
internal static unsafe class FloatConversion
{
    /// <summary>src: <paramref name="count"/> elements of <paramref name="dtype"/> → dst floats.</summary>
    public static void ToF32(string dtype, byte* src, float* dst, long count)
    {
        switch (dtype)
        {
            case SafeTensorsDTypes.F32:
                Buffer.MemoryCopy(src, dst, count * 4, count * 4);
                break;
            case SafeTensorsDTypes.BF16:
                for (long i = 0; i < count; i++)
                {
                    dst[i] = Bf16.ToFloat(Unsafe.ReadUnaligned<ushort>(src + (2 * i)));
                }

                break;
            case SafeTensorsDTypes.F16:
                for (long i = 0; i < count; i++)
                {
                    dst[i] = (float)Unsafe.ReadUnaligned<Half>(src + (2 * i));
                }

                break;
            case SafeTensorsDTypes.F64:
                for (long i = 0; i < count; i++)
                {
                    dst[i] = (float)Unsafe.ReadUnaligned<double>(src + (8 * i));
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a float dtype");
        }
    }

    /// <summary>src: <paramref name="count"/> elements of <paramref name="dtype"/> → dst bf16 bits.</summary>
    public static void ToBf16(string dtype, byte* src, ushort* dst, long count)
    {
        switch (dtype)
        {
            case SafeTensorsDTypes.BF16:
                Buffer.MemoryCopy(src, dst, count * 2, count * 2);
                break;
            case SafeTensorsDTypes.F32:
                for (long i = 0; i < count; i++)
                {
                    dst[i] = Bf16.FromFloat(Unsafe.ReadUnaligned<float>(src + (4 * i)));
                }

                break;
            case SafeTensorsDTypes.F16:
                // F16 → F32 is exact, so this rounds only once.
                for (long i = 0; i < count; i++)
                {
                    dst[i] = Bf16.FromFloat((float)Unsafe.ReadUnaligned<Half>(src + (2 * i)));
                }

                break;
            case SafeTensorsDTypes.F64:
                for (long i = 0; i < count; i++)
                {
                    dst[i] = DoubleToBf16(Unsafe.ReadUnaligned<double>(src + (8 * i)));
                }

                break;
            default:
                throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "not a float dtype");
        }
    }

    /// <summary>
    /// double → bf16 with a single round-to-nearest-even. Rounding to F32 first and then to BF16 could
    /// round twice; instead truncate toward zero to F32 and set the last bit when inexact ("round to
    /// odd"), which keeps the sticky information because F32 has more than 8 + 2 bits.
    /// </summary>
    public static ushort DoubleToBf16(double value)
    {
        if (double.IsNaN(value))
        {
            return Bf16.FromFloat(float.NaN);
        }

        float f = (float)value;
        if ((double)f == value)
        {
            return Bf16.FromFloat(f);
        }

        if (Math.Abs((double)f) > Math.Abs(value))
        {
            f = value > 0 ? MathF.BitDecrement(f) : MathF.BitIncrement(f);
        }

        uint bits = BitConverter.SingleToUInt32Bits(f) | 1u;
        return Bf16.FromFloat(BitConverter.UInt32BitsToSingle(bits));
    }
}
