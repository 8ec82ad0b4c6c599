using System.Globalization;

namespace Microsoft.ML.Lora.Text;

/// <summary>What a split does with the delimiters it finds (tokenizers' SplitDelimiterBehavior).</summary>
internal enum SplitBehavior
{
    Removed,
    Isolated,
    MergedWithPrevious,
    MergedWithNext,
    Contiguous,
}

/// <summary>Cuts pieces at delimiters found by a regex, a literal string or a char class.</summary>
internal sealed class PreTokenizerSplitter
{
    [ThreadStatic]
    private static List<(int Start, int End)>? t_matches;

    [ThreadStatic]
    private static List<(int Start, int End, bool Delimiter)>? t_parts;

    [ThreadStatic]
    private static List<(int Start, int End)>? t_output;

    private readonly TokenizerRegex? _regex;
    private readonly string? _literal;
    private readonly Func<string, int, bool>? _charClass;
    private readonly SplitBehavior _behavior;
    private readonly bool _invert;

    public PreTokenizerSplitter(TokenizerRegex regex, SplitBehavior behavior, bool invert)
    {
        _regex = regex;
        _behavior = behavior;
        _invert = invert;
    }

    public PreTokenizerSplitter(string literal, SplitBehavior behavior, bool invert)
    {
        _literal = literal.Length > 0 ? literal : throw new ArgumentException("empty split pattern", nameof(literal));
        _behavior = behavior;
        _invert = invert;
    }

    private PreTokenizerSplitter(Func<string, int, bool> charClass, SplitBehavior behavior)
    {
        _charClass = charClass;
        _behavior = behavior;
    }

    /// <summary>Digits: numeric code points (Nd, Nl, No) split off, one by one or as runs.</summary>
    public static PreTokenizerSplitter Digits(bool individual) => new(
        static (t, i) => CharUnicodeInfo.GetUnicodeCategory(t, i) is UnicodeCategory.DecimalDigitNumber or UnicodeCategory.LetterNumber or UnicodeCategory.OtherNumber,
        individual ? SplitBehavior.Isolated : SplitBehavior.Contiguous);

    /// <summary>WhitespaceSplit: whitespace removed, the rest kept.</summary>
    public static PreTokenizerSplitter Whitespace() => new(static (t, i) => char.IsWhiteSpace(t[i]), SplitBehavior.Removed);

    public static SplitBehavior ParseBehavior(TokenizerJson j, string key)
    {
        string name = j.RequiredString(key);
        return name switch
        {
            "Removed" => SplitBehavior.Removed,
            "Isolated" => SplitBehavior.Isolated,
            "MergedWithPrevious" => SplitBehavior.MergedWithPrevious,
            "MergedWithNext" => SplitBehavior.MergedWithNext,
            "Contiguous" => SplitBehavior.Contiguous,
            _ => throw new InvalidDataException($"{j.Source}: '{j.Where(key)}' is '{name}', expected Removed, Isolated, MergedWithPrevious, MergedWithNext or Contiguous"),
        };
    }

    /// <summary>Replaces each piece of <paramref name="pieces"/> by its parts.</summary>
    public void Split(string text, List<(int Start, int End)> pieces)
    {
        var matches = t_matches ??= [];
        var parts = t_parts ??= [];
        var output = t_output ??= [];
        output.Clear();
        foreach (var (start, end) in pieces)
        {
            matches.Clear();
            FindDelimiters(text, start, end, matches);
            parts.Clear();
            int at = start;
            foreach (var (ms, me) in matches)
            {
                if (ms > at)
                {
                    parts.Add((at, ms, _invert));
                }

                parts.Add((ms, me, !_invert));
                at = me;
            }

            if (end > at)
            {
                parts.Add((at, end, _invert));
            }

            Apply(parts, output);
        }

        pieces.Clear();
        pieces.AddRange(output);
    }

    private void FindDelimiters(string text, int start, int end, List<(int Start, int End)> matches)
    {
        if (_regex is not null)
        {
            _regex.FindMatches(text.AsSpan(start, end - start), start, matches);
        }
        else if (_literal is not null)
        {
            var span = text.AsSpan(start, end - start);
            for (int i = span.IndexOf(_literal, StringComparison.Ordinal); i >= 0;)
            {
                matches.Add((start + i, start + i + _literal.Length));
                int next = span[(i + _literal.Length)..].IndexOf(_literal, StringComparison.Ordinal);
                i = next < 0 ? -1 : i + _literal.Length + next;
            }
        }
        else
        {
            for (int i = start; i < end;)
            {
                int width = char.IsSurrogatePair(text, i) && i + 1 < end ? 2 : 1;
                if (_charClass!(text, i))
                {
                    matches.Add((i, i + width));
                }

                i += width;
            }
        }
    }

    // parts cover one piece in order; "Delimiter" already accounts for invert.
    private void Apply(List<(int Start, int End, bool Delimiter)> parts, List<(int Start, int End)> output)
    {
        switch (_behavior)
        {
            case SplitBehavior.Isolated:
                foreach (var p in parts)
                {
                    output.Add((p.Start, p.End));
                }

                break;
            case SplitBehavior.Removed:
                foreach (var p in parts)
                {
                    if (!p.Delimiter)
                    {
                        output.Add((p.Start, p.End));
                    }
                }

                break;
            case SplitBehavior.Contiguous:
            {
                bool previousDelimiter = false;
                int first = output.Count;
                foreach (var p in parts)
                {
                    if (p.Delimiter && previousDelimiter && output.Count > first)
                    {
                        output[^1] = (output[^1].Start, p.End);
                    }
                    else
                    {
                        output.Add((p.Start, p.End));
                    }

                    previousDelimiter = p.Delimiter;
                }

                break;
            }

            case SplitBehavior.MergedWithPrevious:
            {
                // A delimiter joins the part before it, unless that part was itself a delimiter.
                bool previousDelimiter = false;
                int first = output.Count;
                foreach (var p in parts)
                {
                    if (p.Delimiter && !previousDelimiter && output.Count > first)
                    {
                        output[^1] = (output[^1].Start, p.End);
                    }
                    else
                    {
                        output.Add((p.Start, p.End));
                    }

                    previousDelimiter = p.Delimiter;
                }

                break;
            }

            case SplitBehavior.MergedWithNext:
            {
                // Mirror image, scanning from the end: a delimiter joins the part after it unless
                // that part was itself a delimiter ("▁▁Hey" → "▁", "▁Hey").
                int first = output.Count;
                bool nextDelimiter = false;
                for (int k = parts.Count - 1; k >= 0; k--)
                {
                    var p = parts[k];
                    if (p.Delimiter && !nextDelimiter && output.Count > first)
                    {
                        output[^1] = (p.Start, output[^1].End);
                    }
                    else
                    {
                        output.Add((p.Start, p.End));
                    }

                    nextDelimiter = p.Delimiter;
                }

                output.Reverse(first, output.Count - first);
                break;
            }
        }
    }
}
