using System.Collections.Frozen;
using System.Text.Json;
using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// A Hugging Face <c>tokenizer.json</c> with a BPE model: byte-level BPE (GPT-2, Llama 3, Qwen2/3,
/// SmolLM) and SentencePiece-style BPE with byte fallback (Llama 2, TinyLlama, Mistral).
/// Encoding runs added-token matching → normalizer → pre-tokenizer → BPE → special tokens of the
/// post-processor; decoding runs the file's decoder. Instances are immutable and thread-safe.
/// </summary>
public sealed class Tokenizer : ITextTokenizer
{
    private readonly string _source;
    private readonly BpeModel _model;
    private readonly Normalizer? _normalizer;
    private readonly PreTokenizer? _preTokenizer;
    private readonly Decoder? _decoder;
    private readonly AddedTokenMatcher _rawAdded;
    private readonly AddedTokenMatcher _normalizedAdded;
    private readonly FrozenDictionary<string, int> _addedByContent;
    private readonly FrozenSet<int> _special;
    private readonly string?[] _idToToken;
    private int[] _prefix;
    private int[] _suffix;

    private Tokenizer(string json, string source, string? configJson)
    {
        _source = source;
        using JsonDocument doc = StrictJson.Parse(json, source, "tokenizer.json");
        var root = new TokenizerJson(doc.RootElement, source, string.Empty);
        if (doc.RootElement.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{source}: the root is {TokenizerJson.Describe(doc.RootElement)}, expected an object");
        }

        TokenizerJson model = root.RequiredObject("model");
        string type = model.OptionalString("type") ?? (model.Has("merges") ? "BPE" : "(none)");
        if (type != "BPE")
        {
            throw new NotSupportedException($"{source}: model type '{type}' is not supported; only BPE tokenizers (Llama, Mistral, Qwen, SmolLM, GPT-2 families) can be read");
        }

        _normalizer = Normalizer.Parse(root.OptionalObject("normalizer"));
        _preTokenizer = PreTokenizer.Parse(root.OptionalObject("pre_tokenizer"));
        _decoder = Decoder.Parse(root.OptionalObject("decoder"));
        _model = BpeModel.Parse(model, _preTokenizer?.IsByteLevel ?? false);

        var added = root.Has("added_tokens") ? root.ObjectArray("added_tokens").Select(AddedToken.Parse).ToArray() : [];
        _addedByContent = added.GroupBy(a => a.Content, StringComparer.Ordinal).ToFrozenDictionary(g => g.Key, g => g.Last().Id, StringComparer.Ordinal);
        _special = added.Where(a => a.Special).Select(a => a.Id).ToFrozenSet();
        _rawAdded = new AddedTokenMatcher(added.Where(a => !a.Normalized).Select(a => (a.Content, a)));
        _normalizedAdded = new AddedTokenMatcher(added.Where(a => a.Normalized).Select(a => (NormalizeContent(a.Content), a)));

        int maxId = Math.Max(_model.MaxId, added.Length == 0 ? -1 : added.Max(a => a.Id));
        _idToToken = new string?[maxId + 1];
        foreach (var (token, id) in _model.Vocab)
        {
            _idToToken[id] = token;
        }

        foreach (AddedToken a in added)
        {
            _idToToken[a.Id] = a.Content;
        }

        var post = TokenizerPostProcessor.Parse(root.OptionalObject("post_processor"), TokenToId);
        (_prefix, _suffix) = (post.Prefix, post.Suffix);
        BosTokenId = post.Prefix.Length == 1 ? post.Prefix[0] : null;
        EosTokenId = post.Suffix.Length == 1 ? post.Suffix[0] : null;
        if (configJson is not null)
        {
            ApplyConfig(configJson);
        }

        foreach (int id in _prefix.Concat(_suffix))
        {
            if (id < 0 || id >= _idToToken.Length || _idToToken[id] is null)
            {
                throw new InvalidDataException($"{source}: the post-processor adds token id {id}, which is not in the vocabulary (size {_idToToken.Length})");
            }
        }

        SpecialTokenIds = [.. _special.Order()];
    }

    /// <summary>The BPE model (tests and benchmarks).</summary>
    internal BpeModel Model => _model;

    /// <summary>The pre-tokens of <paramref name="text"/> as the model sees them (tests and benchmarks).</summary>
    internal List<string> PreTokenize(string text)
    {
        var normalized = new NormalizedString(text, 0);
        _normalizer?.Normalize(normalized);
        var pieces = new List<(int Start, int End)> { (0, normalized.Text.Length) };
        _preTokenizer?.PreTokenize(normalized, pieces);
        return pieces.ConvertAll(p => normalized.Text[p.Start..p.End]);
    }

    /// <summary>1 + the largest token id (model vocabulary and added tokens); ids below it may still be unused.</summary>
    public int VocabSize => _idToToken.Length;

    public int? BosTokenId { get; private set; }

    public int? EosTokenId { get; private set; }

    public int? PadTokenId { get; private set; }

    /// <summary>Ids of the added tokens marked special (skipped by <c>Decode(..., skipSpecialTokens: true)</c>).</summary>
    public IReadOnlyList<int> SpecialTokenIds { get; }

    /// <summary>
    /// Reads <c>tokenizer.json</c> from a Hugging Face model folder, and <c>tokenizer_config.json</c> when
    /// present (bos/eos/pad tokens; <c>add_bos_token</c>/<c>add_eos_token</c> override the post-processor).
    /// </summary>
    public static Tokenizer Load(string modelDirectory)
    {
        string path = Path.Combine(modelDirectory, "tokenizer.json");
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"{path}: not found; the model folder must contain a Hugging Face tokenizer.json", path);
        }

        string configPath = Path.Combine(modelDirectory, "tokenizer_config.json");
        string? config = File.Exists(configPath) ? File.ReadAllText(configPath) : null;
        return new Tokenizer(File.ReadAllText(path), path, config);
    }

    /// <param name="json">The content of a tokenizer.json file.</param>
    /// <param name="sourceName">Name used in error messages (usually the file path).</param>
    /// <param name="tokenizerConfigJson">Optional content of tokenizer_config.json.</param>
    public static Tokenizer FromJson(string json, string sourceName, string? tokenizerConfigJson = null)
    {
        ArgumentNullException.ThrowIfNull(json);
        ArgumentNullException.ThrowIfNull(sourceName);
        return new Tokenizer(json, sourceName, tokenizerConfigJson);
    }

    /// <summary>Token ids of <paramref name="text"/>, with the post-processor's special tokens when <paramref name="addSpecialTokens"/>.</summary>
    public int[] Encode(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        EncodeCore(text, addSpecialTokens, ids, null);
        return [.. ids];
    }

    /// <summary>Token ids with each token's char range in <paramref name="text"/>.</summary>
    public TokenizerEncoding EncodeWithOffsets(string text, bool addSpecialTokens = true)
    {
        ArgumentNullException.ThrowIfNull(text);
        var ids = new List<int>(text.Length / 3 + 4);
        var offsets = new List<(int Start, int End)>(ids.Capacity);
        EncodeCore(text, addSpecialTokens, ids, offsets);
        return new TokenizerEncoding([.. ids], [.. offsets]);
    }

    /// <summary>The text of <paramref name="ids"/> through the file's decoder (tokens joined by spaces when it has none).</summary>
    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var tokens = new List<string>(ids.Length);
        foreach (int id in ids)
        {
            string token = IdToToken(id);
            if (!(skipSpecialTokens && _special.Contains(id)))
            {
                tokens.Add(token);
            }
        }

        return _decoder is null ? string.Join(' ', tokens) : string.Concat(_decoder.Decode(tokens));
    }

    /// <summary>Id of a token string (added tokens first, then the model vocabulary), or null.</summary>
    public int? TokenToId(string token) =>
        _addedByContent.TryGetValue(token, out int id) ? id : _model.TokenToId(token);

    /// <summary>The token string of <paramref name="id"/>, as stored in the file (byte-level chars, "▁", "&lt;0x0A&gt;").</summary>
    public string IdToToken(int id) =>
        (uint)id < (uint)_idToToken.Length && _idToToken[id] is { } token ? token
        : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id {id} is not in the vocabulary of {_source} (size {_idToToken.Length})");

    private void EncodeCore(string text, bool addSpecialTokens, List<int> ids, List<(int Start, int End)>? offsets)
    {
        if (addSpecialTokens)
        {
            AddSpecial(_prefix, ids, offsets);
        }

        var found = new List<(int Start, int End, AddedToken Token)>();
        if (!_rawAdded.IsEmpty)
        {
            _rawAdded.FindAll(text, 0, text.Length, found);
        }

        int at = 0;
        foreach (var (start, end, token) in found)
        {
            EncodeSegment(text, at, start, ids, offsets);
            ids.Add(token.Id);
            offsets?.Add((start, end));
            at = end;
        }

        EncodeSegment(text, at, text.Length, ids, offsets);
        if (addSpecialTokens)
        {
            AddSpecial(_suffix, ids, offsets);
        }
    }

    private static void AddSpecial(int[] special, List<int> ids, List<(int Start, int End)>? offsets)
    {
        ids.AddRange(special);
        for (int i = 0; offsets is not null && i < special.Length; i++)
        {
            offsets.Add((0, 0));
        }
    }

    // Text between added tokens: normalize, find normalized added tokens, pre-tokenize, BPE.
    private void EncodeSegment(string text, int start, int end, List<int> ids, List<(int Start, int End)>? offsets)
    {
        if (start >= end)
        {
            return;
        }

        var normalized = new NormalizedString(text.Substring(start, end - start), start);
        _normalizer?.Normalize(normalized);
        if (_normalizedAdded.IsEmpty)
        {
            EncodeNormalized(normalized, ids, offsets);
            return;
        }

        var found = new List<(int Start, int End, AddedToken Token)>();
        _normalizedAdded.FindAll(normalized.Text, 0, normalized.Text.Length, found);
        int at = 0;
        foreach (var (s, e, token) in found)
        {
            if (s > at)
            {
                EncodeNormalized(normalized.Slice(at, s), ids, offsets);
            }

            ids.Add(token.Id);
            offsets?.Add(normalized.Original(s, e));
            at = e;
        }

        if (normalized.Text.Length > at)
        {
            EncodeNormalized(normalized.Slice(at, normalized.Text.Length), ids, offsets);
        }
    }

    private void EncodeNormalized(NormalizedString normalized, List<int> ids, List<(int Start, int End)>? offsets)
    {
        var pieces = new List<(int Start, int End)> { (0, normalized.Text.Length) };
        _preTokenizer?.PreTokenize(normalized, pieces);
        string t = normalized.Text;
        foreach (var (s, e) in pieces)
        {
            _model.Encode(t.AsSpan(s, e - s), ids, offsets, s, normalized);
        }
    }

    private string NormalizeContent(string content)
    {
        var n = new NormalizedString(content, 0);
        _normalizer?.Normalize(n);
        return n.Text;
    }

    private void ApplyConfig(string configJson)
    {
        string configSource = Path.Combine(Path.GetDirectoryName(_source) ?? string.Empty, "tokenizer_config.json");
        using JsonDocument doc = StrictJson.Parse(configJson, configSource, "tokenizer_config.json");
        var config = new TokenizerJson(doc.RootElement, configSource, string.Empty);
        BosTokenId = ConfigToken(config, "bos_token") ?? (config.Has("bos_token") ? null : BosTokenId);
        EosTokenId = ConfigToken(config, "eos_token") ?? (config.Has("eos_token") ? null : EosTokenId);
        PadTokenId = ConfigToken(config, "pad_token");
        if (config.Has("add_bos_token"))
        {
            _prefix = config.OptionalBool("add_bos_token", false) && BosTokenId is int bos ? [bos] : [];
        }

        if (config.Has("add_eos_token"))
        {
            _suffix = config.OptionalBool("add_eos_token", false) && EosTokenId is int eos ? [eos] : [];
        }
    }

    // "bos_token": "<s>" or {"content": "<s>", ...}; the token must exist.
    private int? ConfigToken(TokenizerJson config, string key)
    {
        JsonElement? value = config.Get(key);
        string? content = value switch
        {
            null => null,
            { ValueKind: JsonValueKind.String } v => v.GetString(),
            { ValueKind: JsonValueKind.Object } v => new TokenizerJson(v, config.Source, config.Where(key)).RequiredString("content"),
            { } v => throw config.Wrong(key, v, "a token string or an object with \"content\""),
        };
        if (content is null)
        {
            return null;
        }

        return TokenToId(content) ?? throw new InvalidDataException($"{config.Source}: '{key}' = '{content}' is not a token of {_source}");
    }
}
