using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// 4-bit NormalFloat quantization (QLoRA, Dettmers et al. 2023, §3) of frozen base weights: the
/// row-major flattened elements in blocks of 64, each block scaled by its absmax, each element stored
/// as the 4-bit index of the nearest <see cref="Table"/> value. Storage layout: <see cref="Nf4Layout"/>.
/// </summary>
/// <remarks>
/// Exact definitions (the reference script tests/reference/make_nf4_fixture.py implements the same):
/// <list type="bullet">
/// <item>absmax[b] = max |x| over block b (F32, exact). A block of all zeros has absmax 0; its elements
/// get the code of 0.0 (7) and dequantize to 0.</item>
/// <item>code = index of the table value nearest to v = x / absmax[b], v rounded to F32 (one F32
/// division). A v exactly halfway between two table values takes the LOWER code.</item>
/// <item>Dequantized value = Table[code] · absmax[b], one F32 multiply.</item>
/// <item>Double quantization (QLoRA's "DQ"): codes are computed with the exact absmax as above; then
/// mean = Σ absmax / blocks (summed in F64 in block order, rounded to F32 once), the offsets
/// d[b] = absmax[b] − mean (F32), scale[g] = max |d| over group g of 256 blocks, and
/// q[b] = round-half-even(d[b] / scale[g] · 127) (in F64; q = 0 where scale is 0) as int8. The absmax
/// used to dequantize is then max(0, ((float)q · scale) / 127 + mean), each step an F32 operation.
/// This symmetric linear int8 differs from bitsandbytes, which quantizes the offsets with its dynamic
/// 8-bit map; it takes the same memory (8 bits per block plus one F32 per 256 blocks).</item>
/// </list>
/// </remarks>
public static unsafe class Nf4
{
    /// <summary>
    /// The 16 NF4 values: quantiles of N(0,1) normalised to [−1,1], with an exact 0, as published with
    /// QLoRA and bitsandbytes (the decimals are those F32 values printed in F64, so the literals are exact).
    /// </summary>
    public static ReadOnlySpan<float> Table =>
    [
        -1.0f, -0.6961928009986877f, -0.5250730514526367f, -0.39491748809814453f,
        -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
        0.07958029955625534f, 0.16093020141124725f, 0.24611230194568634f, 0.33791524171829224f,
        0.44070982933044434f, 0.5626170039176941f, 0.7229568362236023f, 1.0f,
    ];

    /// <summary>The code of 0.0, which an all-zero block stores.</summary>
    public const int ZeroCode = 7;

    // Thresholds[i] decides between codes i and i+1: for every F32 v, v > Thresholds[i] exactly when v
    // lies strictly above the (F64-exact) midpoint of Table[i] and Table[i+1]. Where the midpoint is not
    // an F32, the F32 just below it has that property; where it is, the midpoint itself does, and a v
    // equal to it is a tie that goes to code i. So code(v) = #{i : v > Thresholds[i]}.
    private static readonly float[] Thresholds = MakeThresholds();

    /// <summary>
    /// Quantizes an F32 or BF16 tensor of any shape to NF4 (shape kept); with
    /// <paramref name="doubleQuant"/> the absmax values are quantized to int8 as well. The caller owns the result.
    /// </summary>
    /// <exception cref="ArgumentException">The source is not F32/BF16, or holds a NaN or infinity.</exception>
    public static Tensor Quantize(Tensor source, bool doubleQuant) => Quantize(source, doubleQuant, Vector512.IsHardwareAccelerated);

    /// <summary><see cref="Quantize(Tensor, bool)"/> with the 16-lane code search on or off (tests run both).</summary>
    internal static Tensor Quantize(Tensor source, bool doubleQuant, bool simd)
    {
        ArgumentNullException.ThrowIfNull(source);
        if (source.DType is not (DType.F32 or DType.BF16))
        {
            throw new ArgumentException($"Nf4.Quantize: {source} is {source.DType}; only F32 or BF16 tensors can be quantized to NF4", nameof(source));
        }

        var result = Tensor.EmptyNf4(doubleQuant, source.Shape.ToArray());
        try
        {
            // Zeroes the padding between parts too, so equal inputs give byte-identical storage.
            result.Clear();
            Nf4Layout layout = result.Nf4Layout;
            byte* data = (byte*)result.Data;
            float[]? absmaxAll = doubleQuant ? new float[layout.Blocks] : null;
            float* block = stackalloc float[Nf4Layout.BlockSize];
            for (long b = 0; b < layout.Blocks; b++)
            {
                long start = b * Nf4Layout.BlockSize;
                int count = (int)Math.Min(Nf4Layout.BlockSize, layout.Length - start);
                ReadBlock(source, start, count, block);
                float absmax = QuantizeBlock(source, start, block, count, data + (start >> 1), simd);
                if (absmaxAll is null)
                {
                    ((float*)(data + layout.AbsmaxOffset))[b] = absmax;
                }
                else
                {
                    absmaxAll[b] = absmax;
                }
            }

            if (absmaxAll is not null)
            {
                QuantizeAbsmax(absmaxAll, layout, data);
            }

            return result;
        }
        catch
        {
            result.Dispose();
            throw;
        }
    }

    /// <summary>A new F32 tensor holding the dequantized values of NF4 <paramref name="source"/>.</summary>
    public static Tensor Dequantize(Tensor source)
    {
        ArgumentNullException.ThrowIfNull(source);
        RequireNf4(source, nameof(Dequantize));
        return source.To(DType.F32);
    }

    /// <summary>Bytes of storage per element (codes and state together): 0.5625 plain, ≈ 0.516 double-quantized.</summary>
    public static double BytesPerParameter(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        RequireNf4(tensor, nameof(BytesPerParameter));
        return tensor.Length == 0 ? 0 : (double)tensor.ByteLength / tensor.Length;
    }

    /// <summary>The absmax each block dequantizes with (the double-quantized one where the tensor has that).</summary>
    public static float[] BlockAbsmax(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        RequireNf4(tensor, nameof(BlockAbsmax));
        Nf4Layout layout = tensor.Nf4Layout;
        var result = new float[layout.Blocks];
        for (long b = 0; b < layout.Blocks; b++)
        {
            result[b] = Nf4Decode.BlockAbsmax(layout, (byte*)tensor.Data, b);
        }

        return result;
    }

    /// <summary>The 4-bit code of each element, unpacked to one byte each.</summary>
    public static byte[] Codes(Tensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        RequireNf4(tensor, nameof(Codes));
        var result = new byte[tensor.Length];
        byte* codes = (byte*)tensor.Data;
        for (long i = 0; i < result.LongLength; i++)
        {
            result[i] = (byte)Nf4Decode.Code(codes, i);
        }

        return result;
    }

    /// <summary>Dequantizes NF4 <paramref name="source"/> into an F32 or BF16 tensor of equal element count.</summary>
    internal static void DequantizeInto(Tensor source, Tensor destination)
    {
        Nf4Layout layout = source.Nf4Layout;
        byte* data = (byte*)source.Data;
        GemmIsa isa = GemmIsaSelector.Best;
        if (destination.DType == DType.F32)
        {
            float* dst = destination.F32Ptr;
            for (long start = 0; start < layout.Length; start += int.MaxValue / 2)
            {
                int count = (int)Math.Min(int.MaxValue / 2, layout.Length - start);
                Nf4Decode.Run(layout, data, start, count, dst + start, isa);
            }

            return;
        }

        const int chunk = 4096;
        ushort* bits = destination.Bf16Ptr;
        float* buffer = stackalloc float[chunk];
        for (long start = 0; start < layout.Length; start += chunk)
        {
            int count = (int)Math.Min(chunk, layout.Length - start);
            Nf4Decode.Run(layout, data, start, count, buffer, isa);
            Bf16.FromFloat(new ReadOnlySpan<float>(buffer, count), new Span<ushort>(bits + start, count));
        }
    }

    /// <summary>One dequantized element.</summary>
    internal static float DequantizeElement(Tensor tensor, long index)
    {
        Nf4Layout layout = tensor.Nf4Layout;
        byte* data = (byte*)tensor.Data;
        return Table[Nf4Decode.Code(data, index)] * Nf4Decode.BlockAbsmax(layout, data, index / Nf4Layout.BlockSize);
    }

    /// <summary>The code of the table value nearest to <paramref name="v"/> (in [−1,1]); ties to the lower code.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static int Encode(float v)
    {
        int code = 0;
        float[] t = Thresholds;
        for (int i = 0; i < t.Length; i++)
        {
            code += v > t[i] ? 1 : 0;
        }

        return code;
    }

    private static void ReadBlock(Tensor source, long start, int count, float* block)
    {
        if (source.DType == DType.F32)
        {
            new ReadOnlySpan<float>(source.F32Ptr + start, count).CopyTo(new Span<float>(block, count));
        }
        else
        {
            Bf16.ToFloat(new ReadOnlySpan<ushort>(source.Bf16Ptr + start, count), new Span<float>(block, count));
        }
    }

    // Writes the codes of one block (start is a multiple of 64, so even) and returns its absmax.
    // Fully optimised from the first call: quantizing runs once per weight, too few calls for tiering.
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static float QuantizeBlock(Tensor source, long start, float* x, int count, byte* codes, bool simd)
    {
        float absmax = 0;
        for (int i = 0; i < count; i++)
        {
            if (!float.IsFinite(x[i]))
            {
                throw new ArgumentException($"Nf4.Quantize: {source} element {start + i} is {x[i]}; NF4 needs finite values (a NaN or infinity would poison its block's absmax)", nameof(source));
            }

            absmax = Math.Max(absmax, Math.Abs(x[i]));
        }

        int* code = stackalloc int[Nf4Layout.BlockSize];
        int j = 0;
        if (absmax == 0)
        {
            for (; j < count; j++)
            {
                code[j] = ZeroCode;
            }
        }
        else if (simd)
        {
            // The same F32 division and threshold counts as Encode, 16 lanes at a time.
            Vector512<float> scale = Vector512.Create(absmax);
            float[] t = Thresholds;
            for (; j + 16 <= count; j += 16)
            {
                Vector512<float> v = Vector512.Load(x + j) / scale;
                Vector512<int> c = Vector512<int>.Zero;
                for (int i = 0; i < t.Length; i++)
                {
                    c -= Vector512.GreaterThan(v, Vector512.Create(t[i])).AsInt32();
                }

                c.Store(code + j);
            }
        }

        for (; j < count; j++)
        {
            code[j] = Encode(x[j] / absmax);
        }

        for (int i = 0; i < count; i += 2)
        {
            codes[i >> 1] = (byte)(code[i] | (i + 1 < count ? code[i + 1] << 4 : 0));
        }

        return absmax;
    }

    private static void QuantizeAbsmax(float[] absmax, Nf4Layout layout, byte* data)
    {
        double sum = 0;
        foreach (float a in absmax)
        {
            sum += a;
        }

        float mean = absmax.Length == 0 ? 0f : (float)(sum / absmax.Length);
        *(float*)(data + layout.MeanOffset) = mean;
        sbyte* q = (sbyte*)(data + layout.AbsmaxOffset);
        float* scales = (float*)(data + layout.ScalesOffset);
        for (long g = 0; g < layout.Groups; g++)
        {
            long first = g * Nf4Layout.GroupSize;
            long end = Math.Min(first + Nf4Layout.GroupSize, absmax.Length);
            float scale = 0;
            for (long b = first; b < end; b++)
            {
                scale = Math.Max(scale, Math.Abs(absmax[b] - mean));
            }

            scales[g] = scale;
            for (long b = first; b < end; b++)
            {
                float d = absmax[b] - mean;
                q[b] = scale == 0 ? (sbyte)0 : (sbyte)Math.Round((double)d / scale * 127.0, MidpointRounding.ToEven);
            }
        }
    }

    private static float[] MakeThresholds()
    {
        ReadOnlySpan<float> table = Table;
        var t = new float[table.Length - 1];
        for (int i = 0; i < t.Length; i++)
        {
            double mid = ((double)table[i] + table[i + 1]) / 2;
            float f = (float)mid;
            t[i] = f > mid ? MathF.BitDecrement(f) : f;
        }

        return t;
    }

    private static void RequireNf4(Tensor tensor, string method)
    {
        if (tensor.DType != DType.NF4)
        {
            throw new ArgumentException($"Nf4.{method}: {tensor} is {tensor.DType}, not NF4; make NF4 tensors with Nf4.Quantize", nameof(tensor));
        }
    }
}
