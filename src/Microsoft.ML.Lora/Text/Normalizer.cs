using System.Globalization;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// A tokenizer.json "normalizer": rewrites the text before pre-tokenization, keeping each char's
/// original span (<see cref="NormalizedString"/>). Supported types: Sequence, Prepend, Append, Replace,
/// NFC, NFD, Lowercase, Strip (NFKC/NFKD are not: no compatibility tables are carried).
/// </summary>
internal abstract class Normalizer
{
    public abstract void Normalize(NormalizedString text);

    public static Normalizer? Parse(TokenizerJson? json)
    {
        if (json is not { } j)
        {
            return null;
        }

        string? type = j.OptionalString("type");
        return type switch
        {
            "Sequence" => new SequenceNormalizer(j.ObjectArray("normalizers").Select(n => Parse(n)!).ToArray()),
            "Prepend" => new PrependNormalizer(j.RequiredString("prepend"), append: false),
            "Append" => new PrependNormalizer(j.RequiredString("append"), append: true),
            "Replace" => ReplaceNormalizer.Create(j),
            "NFC" => new UnicodeNormalizer(compose: true),
            "NFD" => new UnicodeNormalizer(compose: false),
            "Lowercase" => new LowercaseNormalizer(),
            "Strip" => new StripNormalizer(j.OptionalBool("strip_left", true), j.OptionalBool("strip_right", true)),
            _ => throw j.Unsupported("normalizer", type),
        };
    }

    private sealed class SequenceNormalizer(Normalizer[] normalizers) : Normalizer
    {
        public override void Normalize(NormalizedString text)
        {
            foreach (Normalizer n in normalizers)
            {
                n.Normalize(text);
            }
        }
    }

    // Added text is zero-width at the first (or past the last) char: it covers no input.
    private sealed class PrependNormalizer(string content, bool append) : Normalizer
    {
        public override void Normalize(NormalizedString text)
        {
            string t = text.Text;
            if (t.Length == 0)
            {
                return;
            }

            var b = new NormalizedString.Builder(t.Length + content.Length);
            if (!append)
            {
                text.InsertZeroWidth(0, content, b);
            }

            for (int i = 0; i < t.Length; i++)
            {
                text.CopyChar(i, b);
            }

            if (append)
            {
                var (_, end) = text.Original(t.Length - 1, t.Length);
                foreach (char c in content)
                {
                    b.Add(c, end, end);
                }
            }

            text.Assign(b);
        }
    }

    private sealed class ReplaceNormalizer : Normalizer
    {
        private readonly string? _literal;
        private readonly TokenizerRegex? _regex;
        private readonly string _content;

        private ReplaceNormalizer(string? literal, TokenizerRegex? regex, string content)
        {
            _literal = literal;
            _regex = regex;
            _content = content;
        }

        public static ReplaceNormalizer Create(TokenizerJson j)
        {
            var (pattern, isRegex) = j.Pattern("pattern");
            string content = j.RequiredString("content");
            if (!isRegex && pattern.Length == 0)
            {
                throw new InvalidDataException($"{j.Source}: '{j.Where("pattern")}' is an empty string");
            }

            return isRegex
                ? new ReplaceNormalizer(null, new TokenizerRegex(pattern, j.Source, j.Where("pattern")), content)
                : new ReplaceNormalizer(pattern, null, content);
        }

        public override void Normalize(NormalizedString text)
        {
            string t = text.Text;
            var matches = new List<(int Start, int End)>();
            if (_literal is not null)
            {
                for (int at = t.IndexOf(_literal, StringComparison.Ordinal); at >= 0; at = t.IndexOf(_literal, at + _literal.Length, StringComparison.Ordinal))
                {
                    matches.Add((at, at + _literal.Length));
                }
            }
            else
            {
                _regex!.FindMatches(t, 0, matches);
            }

            if (matches.Count == 0)
            {
                return;
            }

            // Each replacement char spans the whole matched original text.
            var b = new NormalizedString.Builder(t.Length + (matches.Count * _content.Length));
            int next = 0;
            foreach (var (start, end) in matches)
            {
                for (int i = next; i < start; i++)
                {
                    text.CopyChar(i, b);
                }

                var (os, oe) = text.Original(start, end);
                foreach (char c in _content)
                {
                    b.Add(c, os, oe);
                }

                next = end;
            }

            for (int i = next; i < t.Length; i++)
            {
                text.CopyChar(i, b);
            }

            text.Assign(b);
        }
    }

    /// <summary>
    /// Unicode normalization. Alignment: each base char with its following combining marks is
    /// normalized alone and the result spans that cluster; if clusters interact (Hangul jamo
    /// sequences and the like), the whole text is normalized and every char spans the whole input.
    /// </summary>
    private sealed class UnicodeNormalizer(bool compose) : Normalizer
    {
        public override void Normalize(NormalizedString text)
        {
            string t = text.Text;
            string whole = NormalizerUnicode.Normalize(t, compose);
            if (ReferenceEquals(whole, t) || string.Equals(whole, t, StringComparison.Ordinal))
            {
                return;
            }

            var b = new NormalizedString.Builder(t.Length);
            for (int i = 0; i < t.Length;)
            {
                int j = ClusterEnd(t, i);
                var (os, oe) = text.Original(i, j);
                foreach (char c in NormalizerUnicode.Normalize(t[i..j], compose))
                {
                    b.Add(c, os, oe);
                }

                i = j;
            }

            if (!string.Equals(b.ToString(), whole, StringComparison.Ordinal))
            {
                b = new NormalizedString.Builder(whole.Length);
                var (os, oe) = text.Original(0, t.Length);
                foreach (char c in whole)
                {
                    b.Add(c, os, oe);
                }
            }

            text.Assign(b);
        }

        private static int ClusterEnd(string t, int i)
        {
            i += char.IsSurrogatePair(t, i) ? 2 : 1;
            while (i < t.Length)
            {
                var cat = CharUnicodeInfo.GetUnicodeCategory(t, i);
                bool joins = cat is UnicodeCategory.NonSpacingMark or UnicodeCategory.SpacingCombiningMark or UnicodeCategory.EnclosingMark
                    || t[i] is >= '\u1160' and <= '\u11FF';
                if (!joins)
                {
                    break;
                }

                i += char.IsSurrogatePair(t, i) ? 2 : 1;
            }

            return i;
        }
    }

    private sealed class LowercaseNormalizer : Normalizer
    {
        public override void Normalize(NormalizedString text)
        {
            string t = text.Text;
            string lower = t.ToLowerInvariant();
            if (string.Equals(t, lower, StringComparison.Ordinal))
            {
                return;
            }

            // ToLowerInvariant maps char for char, so the alignment is unchanged.
            var b = new NormalizedString.Builder(t.Length);
            for (int i = 0; i < t.Length; i++)
            {
                var (os, oe) = text.Original(i, i + 1);
                b.Add(lower[i], os, oe);
            }

            text.Assign(b);
        }
    }

    private sealed class StripNormalizer(bool left, bool right) : Normalizer
    {
        public override void Normalize(NormalizedString text)
        {
            string t = text.Text;
            int start = 0, end = t.Length;
            while (left && start < end && char.IsWhiteSpace(t[start]))
            {
                start++;
            }

            while (right && end > start && char.IsWhiteSpace(t[end - 1]))
            {
                end--;
            }

            if (start == 0 && end == t.Length)
            {
                return;
            }

            var b = new NormalizedString.Builder(end - start);
            for (int i = start; i < end; i++)
            {
                text.CopyChar(i, b);
            }

            text.Assign(b);
        }
    }
}
