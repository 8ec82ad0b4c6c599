using System.Runtime.CompilerServices;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>Conversions between F32 and bfloat16 bit patterns.</summary>
public static class Bf16
{
    /// <summary>bf16 bits to float: the bits are the upper half of the float.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(ushort bits) => BitConverter.Int32BitsToSingle(bits << 16);

    /// <summary>
    /// float to bf16 bits with round-to-nearest-even, as PyTorch's <c>tensor.to(torch.bfloat16)</c> does.
    /// NaN stays a (quiet) NaN instead of rounding into infinity.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort FromFloat(float value)
    {
        uint u = BitConverter.SingleToUInt32Bits(value);
        if ((u & 0x7FFF_FFFFu) > 0x7F80_0000u)
        {
            return (ushort)((u >> 16) | 0x0040u);
        }

        uint roundingBias = 0x7FFFu + ((u >> 16) & 1u);
        return (ushort)((u + roundingBias) >> 16);
    }

    /// <summary>Converts a span of floats to bf16 bits.</summary>
    public static void FromFloat(ReadOnlySpan<float> source, Span<ushort> destination)
    {
        if (destination.Length < source.Length)
        {
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        }

        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = FromFloat(source[i]);
        }
    }

    /// <summary>Converts a span of bf16 bits to floats.</summary>
    public static void ToFloat(ReadOnlySpan<ushort> source, Span<float> destination)
    {
        if (destination.Length < source.Length)
        {
            throw new ArgumentException("destination is shorter than source", nameof(destination));
        }

        for (int i = 0; i < source.Length; i++)
        {
            destination[i] = ToFloat(source[i]);
        }
    }
}
