using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// The dtype strings of the safetensors header ("F32", "BF16", "I64", …) and their element sizes.
/// Sub-byte types (F4, F6_*) are not accepted: their byte size is not element count × a whole size.
/// </summary>
public static class SafeTensorsDTypes
{
    /// <summary>IEEE binary64.</summary>
    public const string F64 = "F64";

    /// <summary>IEEE binary32.</summary>
    public const string F32 = "F32";

    /// <summary>IEEE binary16.</summary>
    public const string F16 = "F16";

    /// <summary>bfloat16.</summary>
    public const string BF16 = "BF16";

    /// <summary>Signed 64-bit integer.</summary>
    public const string I64 = "I64";

    /// <summary>Signed 32-bit integer.</summary>
    public const string I32 = "I32";

    private static readonly Dictionary<string, int> Sizes = new(StringComparer.Ordinal)
    {
        ["BOOL"] = 1,
        ["U8"] = 1,
        ["I8"] = 1,
        ["F8_E5M2"] = 1,
        ["F8_E4M3"] = 1,
        ["I16"] = 2,
        ["U16"] = 2,
        [F16] = 2,
        [BF16] = 2,
        [I32] = 4,
        ["U32"] = 4,
        [F32] = 4,
        [F64] = 8,
        [I64] = 8,
        ["U64"] = 8,
    };

    /// <summary>Every dtype string this reader and writer accept, for error messages.</summary>
    public static IEnumerable<string> Known => Sizes.Keys;

    /// <summary>Bytes per element of <paramref name="dtype"/>, or false when the dtype is unknown.</summary>
    public static bool TryGetSize(string dtype, out int size) => Sizes.TryGetValue(dtype, out size);

    /// <summary>Whether <see cref="SafeTensorsFile.Read(string, DType)"/> can convert this dtype (F64, F32, F16, BF16).</summary>
    public static bool IsFloat(string dtype) => dtype is F64 or F32 or F16 or BF16;

    /// <summary>The header string of a <see cref="DType"/>.</summary>
    public static string FromDType(DType dtype) => dtype switch
    {
        DType.F32 => F32,
        DType.BF16 => BF16,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype), dtype, "only F32 and BF16 tensors have a safetensors dtype"),
    };
}
