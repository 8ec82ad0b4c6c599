namespace Microsoft.ML.Lora.Text;

/// <summary>
/// A tokenizer.json "pre_tokenizer": cuts normalized text into pieces ("words") that BPE encodes
/// independently. Pieces are [start, end) ranges over <see cref="NormalizedString.Text"/>; the
/// pre-tokenizers that rewrite text (Metaspace, ByteLevel's prefix space) rebuild it with alignment.
/// Supported types: Sequence, Split, ByteLevel, Metaspace, Digits, WhitespaceSplit.
/// </summary>
internal abstract class PreTokenizer
{
    // GPT-2's pattern, used by ByteLevel when use_regex is true (format fact of tokenizers' ByteLevel).
    internal const string Gpt2Pattern = @"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+";

    /// <summary>True when BPE must see the pieces' UTF-8 bytes through <see cref="ByteLevelAlphabet"/>.</summary>
    public virtual bool IsByteLevel => false;

    /// <summary>Refines <paramref name="pieces"/> (in order, non-overlapping) over <paramref name="text"/>.</summary>
    public abstract void PreTokenize(NormalizedString text, List<(int Start, int End)> pieces);

    public static PreTokenizer? Parse(TokenizerJson? json)
    {
        if (json is not { } j)
        {
            return null;
        }

        string? type = j.OptionalString("type");
        switch (type)
        {
            case "Sequence":
                var steps = j.ObjectArray("pretokenizers").Select(p => Parse(p)!).ToArray();
                for (int i = 0; i < steps.Length - 1; i++)
                {
                    if (steps[i].IsByteLevel)
                    {
                        throw new NotSupportedException($"{j.Source}: ByteLevel at '{j.Where("pretokenizers")}[{i}]' must be the last pre-tokenizer of the Sequence");
                    }
                }

                return new SequencePreTokenizer(steps);
            case "Split":
            {
                var (pattern, isRegex) = j.Pattern("pattern");
                var behavior = PreTokenizerSplitter.ParseBehavior(j, "behavior");
                bool invert = j.OptionalBool("invert", false);
                var splitter = isRegex
                    ? new PreTokenizerSplitter(new TokenizerRegex(pattern, j.Source, j.Where("pattern")), behavior, invert)
                    : new PreTokenizerSplitter(pattern, behavior, invert);
                return new SplitPreTokenizer(splitter);
            }

            case "ByteLevel":
                return new ByteLevelPreTokenizer(
                    j.OptionalBool("add_prefix_space", true),
                    j.OptionalBool("use_regex", true) ? new TokenizerRegex(Gpt2Pattern, j.Source, j.Where("use_regex")) : null);
            case "Metaspace":
                return MetaspacePreTokenizer.Create(j);
            case "Digits":
                return new SplitPreTokenizer(PreTokenizerSplitter.Digits(j.OptionalBool("individual_digits", false)));
            case "WhitespaceSplit":
                return new SplitPreTokenizer(PreTokenizerSplitter.Whitespace());
            default:
                throw j.Unsupported("pre_tokenizer", type);
        }
    }

    private sealed class SequencePreTokenizer(PreTokenizer[] steps) : PreTokenizer
    {
        public override bool IsByteLevel => steps.Length > 0 && steps[^1].IsByteLevel;

        public override void PreTokenize(NormalizedString text, List<(int Start, int End)> pieces)
        {
            foreach (PreTokenizer step in steps)
            {
                step.PreTokenize(text, pieces);
            }
        }
    }

    private sealed class SplitPreTokenizer(PreTokenizerSplitter splitter) : PreTokenizer
    {
        public override void PreTokenize(NormalizedString text, List<(int Start, int End)> pieces) => splitter.Split(text.Text, pieces);
    }

    private sealed class ByteLevelPreTokenizer(bool addPrefixSpace, TokenizerRegex? regex) : PreTokenizer
    {
        private readonly PreTokenizerSplitter? _splitter = regex is null ? null : new PreTokenizerSplitter(regex, SplitBehavior.Isolated, invert: false);

        public override bool IsByteLevel => true;

        public override void PreTokenize(NormalizedString text, List<(int Start, int End)> pieces)
        {
            if (addPrefixSpace)
            {
                PreTokenizerRewrite.PrefixPieces(text, pieces, ' ', static (t, start) => t.Text[start] != ' ');
            }

            _splitter?.Split(text.Text, pieces);
        }
    }

    /// <summary>SentencePiece's "▁" for spaces: replace, optionally prepend, optionally split before each ▁.</summary>
    private sealed class MetaspacePreTokenizer(char replacement, string prependScheme, bool split) : PreTokenizer
    {
        private readonly PreTokenizerSplitter _splitter = new(replacement.ToString(), SplitBehavior.MergedWithNext, invert: false);

        public static MetaspacePreTokenizer Create(TokenizerJson j)
        {
            string replacement = j.OptionalString("replacement") ?? "\u2581";
            if (replacement.Length != 1)
            {
                throw new NotSupportedException($"{j.Source}: '{j.Where("replacement")}' must be one UTF-16 char, got '{replacement}'");
            }

            // Older files carry add_prefix_space instead of prepend_scheme.
            string scheme = j.OptionalString("prepend_scheme") ?? (j.OptionalBool("add_prefix_space", true) ? "always" : "never");
            if (scheme is not ("always" or "first" or "never"))
            {
                throw new InvalidDataException($"{j.Source}: '{j.Where("prepend_scheme")}' is '{scheme}', expected always, first or never");
            }

            return new MetaspacePreTokenizer(replacement[0], scheme, j.OptionalBool("split", true));
        }

        public override void PreTokenize(NormalizedString text, List<(int Start, int End)> pieces)
        {
            PreTokenizerRewrite.ReplaceChar(text, ' ', replacement);
            if (prependScheme != "never")
            {
                bool always = prependScheme == "always";
                PreTokenizerRewrite.PrefixPieces(text, pieces, replacement, (t, start) =>
                    t.Text[start] != replacement && (always || t.Original(start, start + 1).Start == 0));
            }

            if (split)
            {
                _splitter.Split(text.Text, pieces);
            }
        }
    }
}
