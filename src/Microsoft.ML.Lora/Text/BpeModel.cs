using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// The "model" of a tokenizer.json with type BPE: vocabulary, ranked merges and the options
/// byte_fallback, unk_token/fuse_unk, ignore_merges, continuing_subword_prefix and end_of_word_suffix.
/// Encodes one pre-token ("word") at a time; results for short words are cached.
/// </summary>
internal sealed class BpeModel
{
    // Words longer than this are not cached: they are rare, and for files without a pre-tokenizer
    // (Llama 2) a word is a whole text segment that will not come again.
    private const int MaxCachedWordLength = 64;

    // Bounded cache; cleared when full. 32K entries of short words ≈ a few MB, and hold the bulk of
    // the pre-tokens of English prose and code.
    private const int CacheCapacity = 32_768;

    private readonly Dictionary<string, int> _vocab;
    private readonly Dictionary<string, int>.AlternateLookup<ReadOnlySpan<char>> _vocabBySpan;
    private readonly Dictionary<long, Merge> _merges;
    private readonly int[] _byteLevelIds = new int[256];
    private readonly int[] _byteFallbackIds = new int[256];
    private readonly int? _unkId;
    private readonly bool _fuseUnk;
    private readonly bool _byteFallback;
    private readonly bool _ignoreMerges;
    private readonly string _prefix;
    private readonly string _suffix;
    private readonly object _cacheLock = new();
    private readonly Dictionary<string, BpeWord> _cache = new(StringComparer.Ordinal);
    private readonly Dictionary<string, BpeWord>.AlternateLookup<ReadOnlySpan<char>> _cacheBySpan;

    // SentencePiece-style files (Llama 2, Mistral) have no pre-tokenizer: BPE sees a whole text
    // segment as one word. When no merge joins a token ending in another char with a token starting
    // with '▁', no pair across "x▁" ever merges, so cutting the word before each such '▁' gives the
    // same tokens, and the short pieces hit the cache (Mistral's file, TokenizerBenchmark corpus:
    // 2.9 → 23.5 MB/s warm).
    private readonly bool _splitAtMetaspace;

    private BpeModel(Dictionary<string, int> vocab, Dictionary<long, Merge> merges, int? unkId, bool fuseUnk, bool byteFallback, bool ignoreMerges, string prefix, string suffix, bool byteLevel)
    {
        _vocab = vocab;
        _vocabBySpan = vocab.GetAlternateLookup<ReadOnlySpan<char>>();
        _merges = merges;
        _unkId = unkId;
        _fuseUnk = fuseUnk;
        _byteFallback = byteFallback;
        _ignoreMerges = ignoreMerges;
        _prefix = prefix;
        _suffix = suffix;
        ByteLevel = byteLevel;
        _cacheBySpan = _cache.GetAlternateLookup<ReadOnlySpan<char>>();
        for (int b = 0; b < 256; b++)
        {
            _byteLevelIds[b] = vocab.TryGetValue(ByteLevelAlphabet.ByteToChar[b].ToString(), out int id) ? id : -1;
            string hex = string.Create(CultureInfo.InvariantCulture, $"<0x{b:X2}>");
            _byteFallbackIds[b] = vocab.TryGetValue(hex, out int fb) ? fb : -1;
        }

        MaxId = vocab.Count == 0 ? -1 : vocab.Values.Max();
        _splitAtMetaspace = !byteLevel && NoMergeJoinsIntoMetaspace(vocab, merges);
    }

    /// <summary>Whether words are encoded as GPT-2 byte-level symbols (set by a ByteLevel pre-tokenizer).</summary>
    public bool ByteLevel { get; }

    public int MaxId { get; }

    public IReadOnlyDictionary<string, int> Vocab => _vocab;

    public bool ByteFallback => _byteFallback;

    /// <summary>A (left, right) symbol pair that merges into <see cref="Id"/>; lower rank merges first.</summary>
    internal readonly record struct Merge(int Rank, int Id);

    public static BpeModel Parse(TokenizerJson model, bool byteLevel)
    {
        string source = model.Source;
        if (model.Get("dropout") is { ValueKind: JsonValueKind.Number } dropout && dropout.GetDouble() != 0)
        {
            throw new NotSupportedException($"{source}: '{model.Where("dropout")}' = {dropout.GetRawText()}: BPE dropout is a training-time option and is not supported");
        }

        var vocab = ParseVocab(model);
        string prefix = model.OptionalString("continuing_subword_prefix") ?? string.Empty;
        string suffix = model.OptionalString("end_of_word_suffix") ?? string.Empty;
        var merges = ParseMerges(model, vocab, prefix);
        int? unkId = null;
        if (model.OptionalString("unk_token") is { } unk)
        {
            unkId = vocab.TryGetValue(unk, out int u) ? u
                : throw new InvalidDataException($"{source}: '{model.Where("unk_token")}' = '{unk}' is not in the vocab");
        }

        return new BpeModel(vocab, merges, unkId, model.OptionalBool("fuse_unk", false), model.OptionalBool("byte_fallback", false),
            model.OptionalBool("ignore_merges", false), prefix, suffix, byteLevel);
    }

    private static Dictionary<string, int> ParseVocab(TokenizerJson model)
    {
        JsonElement element = model.Get("vocab") ?? throw model.Missing("vocab", "an object of token → id");
        if (element.ValueKind != JsonValueKind.Object)
        {
            throw model.Wrong("vocab", element, "an object of token → id");
        }

        var vocab = new Dictionary<string, int>(StringComparer.Ordinal);
        foreach (JsonProperty p in element.EnumerateObject())
        {
            if (!TokenizerJson.TryGetTokenId(p.Value, out int id))
            {
                throw new InvalidDataException($"{model.Source}: '{model.Where("vocab")}' entry '{p.Name}' is {TokenizerJson.Describe(p.Value)}, expected a token id in [0, {TokenizerJson.MaxTokenId}]");
            }

            vocab[p.Name] = id;
        }

        return vocab;
    }

    private static Dictionary<long, Merge> ParseMerges(TokenizerJson model, Dictionary<string, int> vocab, string prefix)
    {
        JsonElement element = model.Get("merges") ?? throw model.Missing("merges", "an array of merges (\"a b\" or [\"a\", \"b\"])");
        if (element.ValueKind != JsonValueKind.Array)
        {
            throw model.Wrong("merges", element, "an array of merges");
        }

        var merges = new Dictionary<long, Merge>(element.GetArrayLength());
        int rank = 0;
        foreach (JsonElement m in element.EnumerateArray())
        {
            string where = $"{model.Where("merges")}[{rank}]";
            string left, right;
            if (m.ValueKind == JsonValueKind.String)
            {
                string line = m.GetString()!;
                int space = line.IndexOf(' ', StringComparison.Ordinal);
                if (space < 0 || line.IndexOf(' ', space + 1) >= 0)
                {
                    throw new InvalidDataException($"{model.Source}: '{where}' is \"{line}\", expected two tokens separated by one space");
                }

                left = line[..space];
                right = line[(space + 1)..];
            }
            else if (m.ValueKind == JsonValueKind.Array && m.GetArrayLength() == 2
                && m[0].ValueKind == JsonValueKind.String && m[1].ValueKind == JsonValueKind.String)
            {
                left = m[0].GetString()!;
                right = m[1].GetString()!;
            }
            else
            {
                throw new InvalidDataException($"{model.Source}: '{where}' is {TokenizerJson.Describe(m)}, expected \"a b\" or [\"a\", \"b\"]");
            }

            int leftId = Lookup(left);
            int rightId = Lookup(right);
            string merged = left + (prefix.Length > 0 && right.StartsWith(prefix, StringComparison.Ordinal) ? right[prefix.Length..] : right);
            if (!vocab.TryGetValue(merged, out int id))
            {
                throw new InvalidDataException($"{model.Source}: '{where}' merges '{left}' + '{right}' into '{merged}', which is not in the vocab");
            }

            // Later duplicates win, as in the reference implementation's map.
            merges[Key(leftId, rightId)] = new Merge(rank, id);
            rank++;

            int Lookup(string token) => vocab.TryGetValue(token, out int tid) ? tid
                : throw new InvalidDataException($"{model.Source}: '{where}' uses token '{token}', which is not in the vocab");
        }

        return merges;
    }

    private static long Key(int left, int right) => ((long)left << 32) | (uint)right;

    internal bool TryGetMerge(int left, int right, out Merge merge) => _merges.TryGetValue(Key(left, right), out merge);

    public int? TokenToId(string token) => _vocab.TryGetValue(token, out int id) ? id : null;

    /// <summary>
    /// Appends the ids of one word (and, when <paramref name="offsets"/> is given, each token's
    /// [start, end) in <paramref name="word"/>'s chars shifted by <paramref name="offsetBase"/>).
    /// </summary>
    public void Encode(ReadOnlySpan<char> word, List<int> ids, List<(int Start, int End)>? offsets, int offsetBase, NormalizedString? alignment)
    {
        if (!_splitAtMetaspace || word.Length <= MaxCachedWordLength)
        {
            EncodePiece(word, ids, offsets, offsetBase, alignment);
            return;
        }

        int start = 0;
        for (int i = 1; i < word.Length; i++)
        {
            if (word[i] == Metaspace && word[i - 1] != Metaspace)
            {
                EncodePiece(word[start..i], ids, offsets, offsetBase + start, alignment);
                start = i;
            }
        }

        EncodePiece(word[start..], ids, offsets, offsetBase + start, alignment);
    }

    private const char Metaspace = '\u2581';

    /// <summary>Whether long words are cut before each "x▁" (see the field's comment).</summary>
    internal bool SplitsAtMetaspace => _splitAtMetaspace;

    private static bool NoMergeJoinsIntoMetaspace(Dictionary<string, int> vocab, Dictionary<long, Merge> merges)
    {
        var tokens = new string[vocab.Count == 0 ? 0 : vocab.Values.Max() + 1];
        foreach (var (token, id) in vocab)
        {
            tokens[id] = token;
        }

        foreach (long pair in merges.Keys)
        {
            string? left = tokens[(int)(pair >> 32)];
            string? right = tokens[(int)pair];
            if (left is { Length: > 0 } && right is { Length: > 0 } && left[^1] != Metaspace && right[0] == Metaspace)
            {
                return false;
            }
        }

        return true;
    }

    private void EncodePiece(ReadOnlySpan<char> word, List<int> ids, List<(int Start, int End)>? offsets, int offsetBase, NormalizedString? alignment)
    {
        if (word.IsEmpty)
        {
            return;
        }

        BpeWord? result = null;
        if (word.Length <= MaxCachedWordLength)
        {
            lock (_cacheLock)
            {
                _cacheBySpan.TryGetValue(word, out result);
            }
        }

        if (result is null)
        {
            result = EncodeUncached(word);
            if (word.Length <= MaxCachedWordLength)
            {
                lock (_cacheLock)
                {
                    if (_cache.Count >= CacheCapacity)
                    {
                        _cache.Clear();
                    }

                    _cacheBySpan.TryAdd(word, result);
                }
            }
        }

        ids.AddRange(result.Ids);
        if (offsets is not null)
        {
            for (int i = 0; i < result.Ids.Length; i++)
            {
                int s = offsetBase + result.Starts[i], e = offsetBase + result.Ends[i];
                offsets.Add(alignment is null ? (s, e) : alignment.Original(s, e));
            }
        }
    }

    /// <summary>Encodes one word without the cache (also the entry point of the tests and the benchmark).</summary>
    internal BpeWord EncodeUncached(ReadOnlySpan<char> word)
    {
        var scratch = BpeScratch.Get(ByteLevel ? Encoding.UTF8.GetMaxByteCount(word.Length) : word.Length * 4 + 2);
        int n = ByteLevel ? InitByteLevel(word, scratch) : InitChars(word, scratch);
        if (n < 0)
        {
            // ignore_merges: the whole word is one vocabulary token.
            return new BpeWord([-n - 1], [0], [word.Length]);
        }

        BpeMerger.MergeAll(this, scratch.Symbols, n, scratch);

        return Collect(word, scratch, n);
    }

    /// <summary>The word through <see cref="BpeMergerReference"/> instead of the heap merger (tests only).</summary>
    internal int[] EncodeReference(ReadOnlySpan<char> word)
    {
        var scratch = BpeScratch.Get(ByteLevel ? Encoding.UTF8.GetMaxByteCount(word.Length) : word.Length * 4 + 2);
        int n = ByteLevel ? InitByteLevel(word, scratch) : InitChars(word, scratch);
        if (n < 0)
        {
            return [-n - 1];
        }

        int[] initial = new int[n];
        for (int i = 0; i < n; i++)
        {
            initial[i] = scratch.Symbols[i].Id;
        }

        return BpeMergerReference.MergeAll(this, initial);
    }

    // Symbols over the word's UTF-8 bytes; units are bytes. Returns the count, or -(id+1) when
    // ignore_merges finds the whole word in the vocab.
    private int InitByteLevel(ReadOnlySpan<char> word, BpeScratch scratch)
    {
        int byteCount = Encoding.UTF8.GetBytes(word, scratch.Bytes);
        Span<byte> bytes = scratch.Bytes.AsSpan(0, byteCount);
        if (_ignoreMerges)
        {
            Span<char> mapped = byteCount <= 256 ? stackalloc char[byteCount] : new char[byteCount];
            for (int i = 0; i < byteCount; i++)
            {
                mapped[i] = ByteLevelAlphabet.ByteToChar[bytes[i]];
            }

            if (_vocabBySpan.TryGetValue(mapped, out int whole))
            {
                return -whole - 1;
            }
        }

        var symbols = scratch.Symbols;
        int n = 0;
        for (int i = 0; i < byteCount; i++)
        {
            int id = _byteLevelIds[bytes[i]];
            if (id < 0)
            {
                if (_unkId is not int unk)
                {
                    continue;
                }

                id = unk;
            }

            symbols[n++] = new BpeSymbol(id, i, i + 1);
        }

        return n;
    }

    // Symbols over code points (with byte_fallback or unk for unknown ones); units are chars.
    private int InitChars(ReadOnlySpan<char> word, BpeScratch scratch)
    {
        if (_ignoreMerges && _vocabBySpan.TryGetValue(word, out int whole))
        {
            return -whole - 1;
        }

        var symbols = scratch.Symbols;
        int n = 0;
        Span<char> key = stackalloc char[2 + _prefix.Length + _suffix.Length];
        Span<byte> utf8 = stackalloc byte[4];
        bool previousUnk = false;
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            ReadOnlySpan<char> c = word.Slice(i, width);
            int len = 0;
            if (i > 0 && _prefix.Length > 0)
            {
                _prefix.AsSpan().CopyTo(key);
                len = _prefix.Length;
            }

            c.CopyTo(key[len..]);
            len += width;
            if (i + width == word.Length && _suffix.Length > 0)
            {
                _suffix.AsSpan().CopyTo(key[len..]);
                len += _suffix.Length;
            }

            if (_vocabBySpan.TryGetValue(key[..len], out int id))
            {
                symbols[n++] = new BpeSymbol(id, i, i + width);
                previousUnk = false;
            }
            else if (_byteFallback && TryByteFallback(c, utf8, out int count))
            {
                for (int k = 0; k < count; k++)
                {
                    // Every byte token of a char spans the whole char.
                    symbols[n++] = new BpeSymbol(_byteFallbackIds[utf8[k]], i, i + width);
                }

                previousUnk = false;
            }
            else if (_unkId is int unk)
            {
                if (_fuseUnk && previousUnk)
                {
                    symbols[n - 1].End = i + width;
                }
                else
                {
                    symbols[n++] = new BpeSymbol(unk, i, i + width);
                }

                previousUnk = true;
            }

            i += width;
        }

        return n;
    }

    private bool TryByteFallback(ReadOnlySpan<char> c, Span<byte> utf8, out int count)
    {
        // A lone surrogate is encoded as U+FFFD, as UTF-8 conversion of the whole text would do.
        count = Encoding.UTF8.GetBytes(c, utf8);
        for (int k = 0; k < count; k++)
        {
            if (_byteFallbackIds[utf8[k]] < 0)
            {
                return false;
            }
        }

        return true;
    }

    private BpeWord Collect(ReadOnlySpan<char> word, BpeScratch scratch, int n)
    {
        var symbols = scratch.Symbols;
        int count = 0;
        for (int i = 0; i >= 0 && i < n; i = symbols[i].Next)
        {
            count++;
        }

        var ids = new int[count];
        var starts = new int[count];
        var ends = new int[count];
        int[]? charOfByte = ByteLevel ? CharIndexOfEachByte(word, scratch) : null;
        int k = 0;
        for (int i = 0; i >= 0 && i < n; i = symbols[i].Next)
        {
            ids[k] = symbols[i].Id;
            if (charOfByte is null)
            {
                starts[k] = symbols[i].Start;
                ends[k] = symbols[i].End;
            }
            else
            {
                // A token ending inside a multi-byte char spans that whole char.
                int first = charOfByte[symbols[i].Start];
                int last = charOfByte[symbols[i].End - 1];
                starts[k] = first;
                ends[k] = last + (char.IsHighSurrogate(word[last]) && last + 1 < word.Length ? 2 : 1);
            }

            k++;
        }

        return new BpeWord(ids, starts, ends);
    }

    private static int[] CharIndexOfEachByte(ReadOnlySpan<char> word, BpeScratch scratch)
    {
        var map = new int[Encoding.UTF8.GetMaxByteCount(word.Length)];
        int b = 0;
        Span<byte> tmp = stackalloc byte[4];
        for (int i = 0; i < word.Length;)
        {
            int width = char.IsHighSurrogate(word[i]) && i + 1 < word.Length && char.IsLowSurrogate(word[i + 1]) ? 2 : 1;
            int count = Encoding.UTF8.GetBytes(word.Slice(i, width), tmp);
            for (int k = 0; k < count; k++)
            {
                map[b++] = i;
            }

            i += width;
        }

        return map;
    }
}

/// <summary>Token ids of one word and each token's [start, end) in the word's chars.</summary>
internal sealed record BpeWord(int[] Ids, int[] Starts, int[] Ends);
