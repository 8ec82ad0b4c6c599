using System.Globalization;
using System.Text;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// Canonical Unicode normalization (NFC, NFD) from <see cref="NormalizerData"/>. Needed because
/// <see cref="string.Normalize()"/> returns its input unchanged in globalization-invariant mode,
/// which this repository's apps run in. Algorithm of UAX #15: full canonical decomposition
/// (Hangul algorithmically), canonical ordering of combining marks by class, then canonical
/// composition of unblocked pairs.
/// </summary>
internal static class NormalizerUnicode
{
    // Hangul syllable arithmetic (Unicode ch. 3.12).
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, int[]> Decompositions = ParseDecompositions();
    private static readonly Dictionary<int, byte> CombiningClasses = ParseClasses();
    private static readonly Dictionary<long, int> Compositions = ParseCompositions();

    // Code points that may change under NFC / NFD; text without any is already normalized.
    private static readonly HashSet<int> NfcUnstable = BuildNfcUnstable();
    private static readonly HashSet<int> NfdUnstable = [.. Decompositions.Keys, .. CombiningClasses.Keys];

    public static bool IsNormalized(string text, bool compose)
    {
        var unstable = compose ? NfcUnstable : NfdUnstable;

        // Below U+0300 nothing changes under NFC; under NFD, Latin-1 letters from U+00C0 decompose.
        char stableBelow = compose ? '\u0300' : '\u00C0';
        for (int i = 0; i < text.Length; i++)
        {
            char c = text[i];
            if (c < stableBelow)
            {
                continue;
            }

            int cp = c;
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32(c, text[++i]);
            }

            if (unstable.Contains(cp) || (!compose && cp is >= SBase and < SBase + SCount))
            {
                return false;
            }
        }

        return true;
    }

    public static string Normalize(string text, bool compose)
    {
        if (IsNormalized(text, compose))
        {
            return text;
        }

        var cps = new List<int>(text.Length + 8);
        for (int i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                cp = char.ConvertToUtf32(text[i], text[++i]);
            }

            Decompose(cp, cps);
        }

        SortMarks(cps);
        if (compose)
        {
            Compose(cps);
        }

        var b = new StringBuilder(cps.Count);
        foreach (int cp in cps)
        {
            // Lone surrogates pass through as themselves.
            if (cp is >= 0xD800 and <= 0xDFFF)
            {
                b.Append((char)cp);
            }
            else
            {
                b.Append(char.ConvertFromUtf32(cp));
            }
        }

        return b.ToString();
    }

    public static int CombiningClass(int cp) => CombiningClasses.TryGetValue(cp, out byte c) ? c : 0;

    private static void Decompose(int cp, List<int> output)
    {
        if (cp is >= SBase and < SBase + SCount)
        {
            int s = cp - SBase;
            output.Add(LBase + (s / NCount));
            output.Add(VBase + (s % NCount / TCount));
            if (s % TCount != 0)
            {
                output.Add(TBase + (s % TCount));
            }
        }
        else if (Decompositions.TryGetValue(cp, out int[]? d))
        {
            output.AddRange(d);
        }
        else
        {
            output.Add(cp);
        }
    }

    // Stable insertion sort of each run of non-starters by combining class (runs are short).
    private static void SortMarks(List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int cp = cps[i];
            int cc = CombiningClass(cp);
            if (cc == 0)
            {
                continue;
            }

            int j = i;
            while (j > 0 && CombiningClass(cps[j - 1]) > cc)
            {
                cps[j] = cps[j - 1];
                j--;
            }

            cps[j] = cp;
        }
    }

    private static void Compose(List<int> cps)
    {
        if (cps.Count == 0)
        {
            return;
        }

        int starter = 0;
        int lastClass = CombiningClass(cps[0]) == 0 ? 0 : 256;
        int write = 1;
        for (int read = 1; read < cps.Count; read++)
        {
            int cp = cps[read];
            int cc = CombiningClass(cp);
            if ((lastClass < cc || lastClass == 0) && TryCompose(cps[starter], cp, out int composite))
            {
                cps[starter] = composite;
                continue;
            }

            if (cc == 0)
            {
                starter = write;
            }

            lastClass = cc;
            cps[write++] = cp;
        }

        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        if (first is >= LBase and < LBase + LCount && second is >= VBase and < VBase + VCount)
        {
            composite = SBase + ((((first - LBase) * VCount) + (second - VBase)) * TCount);
            return true;
        }

        if (first is >= SBase and < SBase + SCount && (first - SBase) % TCount == 0 && second is > TBase and < TBase + TCount)
        {
            composite = first + (second - TBase);
            return true;
        }

        return Compositions.TryGetValue(((long)first << 21) | (uint)second, out composite);
    }

    private static HashSet<int> BuildNfcUnstable()
    {
        var set = new HashSet<int>(CombiningClasses.Keys);
        var composites = new HashSet<int>(Compositions.Values);
        foreach (long pair in Compositions.Keys)
        {
            set.Add((int)(pair & 0x1FFFFF));
        }

        foreach (int cp in Decompositions.Keys)
        {
            if (!composites.Contains(cp))
            {
                set.Add(cp); // singletons and composition exclusions never survive NFC
            }
        }

        for (int v = VBase; v < VBase + VCount; v++)
        {
            set.Add(v);
        }

        for (int t = TBase + 1; t < TBase + TCount; t++)
        {
            set.Add(t);
        }

        return set;
    }

    private static IEnumerable<(int Key, string Value)> Entries(string table)
    {
        foreach (string entry in table.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = entry.IndexOf(':', StringComparison.Ordinal);
            yield return (Hex(entry.AsSpan(0, colon)), entry[(colon + 1)..]);
        }
    }

    private static int Hex(ReadOnlySpan<char> s) => int.Parse(s, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture);

    private static Dictionary<int, int[]> ParseDecompositions() =>
        Entries(NormalizerData.Decompositions).ToDictionary(e => e.Key, e => e.Value.Split(' ').Select(x => Hex(x)).ToArray());

    private static Dictionary<int, byte> ParseClasses() =>
        Entries(NormalizerData.CombiningClasses).ToDictionary(e => e.Key, e => (byte)Hex(e.Value));

    private static Dictionary<long, int> ParseCompositions()
    {
        var map = new Dictionary<long, int>();
        foreach (string entry in NormalizerData.Compositions.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            int space = entry.IndexOf(' ', StringComparison.Ordinal);
            int colon = entry.IndexOf(':', StringComparison.Ordinal);
            long key = ((long)Hex(entry.AsSpan(0, space)) << 21) | (uint)Hex(entry.AsSpan(space + 1, colon - space - 1));
            map[key] = Hex(entry.AsSpan(colon + 1));
        }

        return map;
    }
}
