using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// A Hugging Face Split/Replace regex run with .NET <see cref="Regex"/>. The files' patterns are
/// written for engines that match code points (Rust <c>regex</c>/<c>onig</c>), while .NET matches
/// UTF-16 units: a supplementary letter such as U+1D518 is two surrogates, which <c>\p{L}</c> does
/// not match. When the text holds surrogates, the regex runs on a shadow string where each
/// supplementary code point is replaced by one BMP char of the same Unicode category, so category
/// classes and counted repeats (<c>\p{N}{1,3}</c>) see code points as the file's engine does.
/// </summary>
internal sealed class TokenizerRegex
{
    // One BMP stand-in per UnicodeCategory (index = (int)category); checked by a test.
    internal static readonly char[] CategoryStandIns =
    [
        '\u00C0', // UppercaseLetter
        '\u00E0', // LowercaseLetter
        '\u01C5', // TitlecaseLetter
        '\u02B0', // ModifierLetter
        '\u4E00', // OtherLetter
        '\u0300', // NonSpacingMark
        '\u0903', // SpacingCombiningMark
        '\u20DD', // EnclosingMark
        '\u0660', // DecimalDigitNumber
        '\u2160', // LetterNumber
        '\u00B2', // OtherNumber
        '\u00A0', // SpaceSeparator (no supplementary code point has it)
        '\u2028', // LineSeparator (idem)
        '\u2029', // ParagraphSeparator (idem)
        '\u0085', // Control (idem)
        '\u00AD', // Format
        '\uFFFD', // Surrogate: a lone surrogate, which UTF-8 encoding turns into U+FFFD
        '\uE000', // PrivateUse
        '\u203F', // ConnectorPunctuation
        '\u2010', // DashPunctuation
        '\u2045', // OpenPunctuation
        '\u2046', // ClosePunctuation
        '\u00AB', // InitialQuotePunctuation
        '\u00BB', // FinalQuotePunctuation
        '\u00A1', // OtherPunctuation
        '\u00AC', // MathSymbol
        '\u00A2', // CurrencySymbol
        '\u00A8', // ModifierSymbol
        '\u00A6', // OtherSymbol
        '\u0378', // OtherNotAssigned
    ];

    private readonly Regex _regex;

    public TokenizerRegex(string pattern, string source, string where)
    {
        Pattern = pattern;
        try
        {
            _regex = new Regex(pattern, RegexOptions.CultureInvariant | RegexOptions.Compiled);
        }
        catch (ArgumentException e)
        {
            throw new NotSupportedException($"{source}: regex at '{where}' is not supported by .NET Regex: {e.Message}", e);
        }
    }

    public string Pattern { get; }

    /// <summary>Appends the [start, end) of every non-empty match in <paramref name="text"/>, shifted by <paramref name="offset"/>.</summary>
    public void FindMatches(ReadOnlySpan<char> text, int offset, List<(int Start, int End)> matches)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch m in _regex.EnumerateMatches(text))
            {
                if (m.Length > 0)
                {
                    matches.Add((offset + m.Index, offset + m.Index + m.Length));
                }
            }

            return;
        }

        // Shadow: one char per code point; toOriginal[k] = index in text of shadow char k (and the end).
        char[] shadow = new char[text.Length];
        int[] toOriginal = new int[text.Length + 1];
        int n = 0;
        for (int i = 0; i < text.Length;)
        {
            toOriginal[n] = i;
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                int cp = char.ConvertToUtf32(c, text[i + 1]);
                shadow[n++] = CategoryStandIns[(int)CharUnicodeInfo.GetUnicodeCategory(cp)];
                i += 2;
            }
            else
            {
                shadow[n++] = char.IsSurrogate(c) ? '\uFFFD' : c;
                i++;
            }
        }

        toOriginal[n] = text.Length;
        foreach (ValueMatch m in _regex.EnumerateMatches(shadow.AsSpan(0, n)))
        {
            if (m.Length > 0)
            {
                matches.Add((offset + toOriginal[m.Index], offset + toOriginal[m.Index + m.Length]));
            }
        }
    }
}
