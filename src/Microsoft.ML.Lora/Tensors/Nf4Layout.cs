namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Where the parts of an NF4 tensor lie in its one storage block (byte offsets from
/// <see cref="Tensor.Data"/>). Elements are the row-major flattening of the logical shape.
/// <list type="number">
/// <item>Codes at 0, <see cref="CodeBytes"/> = ⌈n/2⌉ bytes: element i is in byte i/2, in the LOW
/// nibble when i is even and the HIGH nibble when i is odd (bitsandbytes puts the first element in the
/// high nibble; ours is the order a little-endian shift-by-4·(i&amp;1) reads).</item>
/// <item>Without double quantization: absmax, F32[<see cref="Blocks"/>], at <see cref="AbsmaxOffset"/>.</item>
/// <item>With double quantization: the absmax minus their mean as int8[<see cref="Blocks"/>] at
/// <see cref="AbsmaxOffset"/>, one F32 scale per group of <see cref="GroupSize"/> blocks
/// (F32[<see cref="Groups"/>]) at <see cref="ScalesOffset"/>, and the F32 mean at
/// <see cref="MeanOffset"/>.</item>
/// </list>
/// Each part starts on a 64-byte boundary so that SIMD loads of one part never straddle into another's
/// cache line; the padding is at most 63 bytes per part and is counted in <see cref="TotalBytes"/>.
/// </summary>
public sealed class Nf4Layout
{
    /// <summary>Elements per absmax block (QLoRA's block size).</summary>
    public const int BlockSize = 64;

    /// <summary>Absmax blocks per double-quantization group (QLoRA's second-level block size).</summary>
    public const int GroupSize = 256;

    private const int PartAlignment = 64;

    /// <summary>The layout of <paramref name="length"/> elements.</summary>
    public Nf4Layout(long length, bool doubleQuant)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        Length = length;
        DoubleQuant = doubleQuant;
        Blocks = (length + BlockSize - 1) / BlockSize;
        Groups = doubleQuant ? (Blocks + GroupSize - 1) / GroupSize : 0;
        CodeBytes = (length + 1) / 2;
        AbsmaxOffset = Align(CodeBytes);
        if (doubleQuant)
        {
            ScalesOffset = Align(AbsmaxOffset + Blocks);
            MeanOffset = ScalesOffset + (Groups * sizeof(float));
            TotalBytes = MeanOffset + sizeof(float);
        }
        else
        {
            ScalesOffset = -1;
            MeanOffset = -1;
            TotalBytes = AbsmaxOffset + (Blocks * sizeof(float));
        }
    }

    /// <summary>Number of elements.</summary>
    public long Length { get; }

    /// <summary>Whether the absmax values are themselves quantized to 8 bits.</summary>
    public bool DoubleQuant { get; }

    /// <summary>Number of absmax blocks, ⌈<see cref="Length"/>/64⌉.</summary>
    public long Blocks { get; }

    /// <summary>Number of double-quantization groups, ⌈<see cref="Blocks"/>/256⌉ (0 without double quantization).</summary>
    public long Groups { get; }

    /// <summary>Bytes of packed codes, ⌈<see cref="Length"/>/2⌉.</summary>
    public long CodeBytes { get; }

    /// <summary>Offset of the absmax: F32 per block, or int8 per block with double quantization.</summary>
    public long AbsmaxOffset { get; }

    /// <summary>Offset of the F32 per-group scales (double quantization only; −1 otherwise).</summary>
    public long ScalesOffset { get; }

    /// <summary>Offset of the F32 mean of the absmax (double quantization only; −1 otherwise).</summary>
    public long MeanOffset { get; }

    /// <summary>Bytes of the whole storage, codes and state.</summary>
    public long TotalBytes { get; }

    /// <inheritdoc/>
    public override string ToString() =>
        $"NF4 {Length} elements, {Blocks} blocks of {BlockSize}{(DoubleQuant ? $", double-quantized absmax in {Groups} groups of {GroupSize}" : string.Empty)}, {TotalBytes} bytes";

    private static long Align(long offset) => (offset + PartAlignment - 1) / PartAlignment * PartAlignment;
}
