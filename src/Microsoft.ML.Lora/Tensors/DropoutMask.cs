using System.Runtime.CompilerServices;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// The native backend's dropout masks: element i is kept when the top 24 bits of a SplitMix64 hash of
/// (seed, i) are at least p·2²⁴, so a mask is a pure function of its seed and never stored.
/// </summary>
internal static class DropoutMask
{
    /// <summary>p·2²⁴ rounded: elements whose 24-bit hash fraction is below it are dropped.</summary>
    public static uint Threshold(float p) => (uint)Math.Round(p * (1 << 24));

    /// <summary>Whether element <paramref name="i"/> survives.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Keep(ulong seed, long i, uint threshold) => (uint)(Mix(seed ^ Mix((ulong)i)) >> 40) >= threshold;

    /// <summary>SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
