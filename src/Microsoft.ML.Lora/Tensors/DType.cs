namespace Microsoft.ML.Lora.Tensors;

/// <summary>Element type of a <see cref="Tensor"/>'s storage.</summary>
public enum DType
{
    /// <summary>IEEE 754 binary32.</summary>
    F32,

    /// <summary>bfloat16: the upper 16 bits of an F32, stored as <see cref="ushort"/>. Used for frozen base weights.</summary>
    BF16,

    /// <summary>
    /// 4-bit NormalFloat (QLoRA, Dettmers et al. 2023): packed 4-bit codes plus per-block quantization
    /// state in one storage block, laid out by <see cref="Nf4Layout"/>. Made by <see cref="Nf4.Quantize(Tensor, bool)"/>;
    /// frozen base weights only.
    /// </summary>
    NF4,
}

/// <summary>Sizes and names of <see cref="DType"/> values.</summary>
public static class DTypes
{
    /// <summary>Bytes per element. NF4 has no whole number of bytes per element and throws.</summary>
    public static int SizeOf(this DType dtype) => dtype switch
    {
        DType.F32 => 4,
        DType.BF16 => 2,
        DType.NF4 => throw new ArgumentException(
            "NF4 packs two 4-bit codes per byte plus per-block absmax state, so it has no bytes-per-element size; use Tensor.ByteLength or Nf4.BytesPerParameter",
            nameof(dtype)),
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "unknown dtype"),
    };

    /// <summary>Parses "f32"/"float32" and "bf16"/"bfloat16" (case-insensitive), as the CLI's <c>--dtype</c> takes them.</summary>
    public static DType Parse(string text) => text.ToLowerInvariant() switch
    {
        "f32" or "float32" or "fp32" => DType.F32,
        "bf16" or "bfloat16" => DType.BF16,
        _ => throw new ArgumentException($"unknown dtype '{text}': expected f32 or bf16", nameof(text)),
    };
}
