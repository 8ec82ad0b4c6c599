using System.Text.Json;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// Typed access to one object of a tokenizer.json / tokenizer_config.json file. Every missing or
/// wrong-typed field becomes an <see cref="InvalidDataException"/> naming the file and the JSON path.
/// JSON null counts as absent.
/// </summary>
internal readonly struct TokenizerJson(JsonElement element, string source, string path)
{
    public JsonElement Element => element;

    public string Source => source;

    /// <summary>Dotted JSON path of this object, for messages ("" for the root).</summary>
    public string Path => path;

    public string Where(string key) => path.Length == 0 ? key : $"{path}.{key}";

    public JsonElement? Get(string key) =>
        element.ValueKind == JsonValueKind.Object && element.TryGetProperty(key, out JsonElement v) && v.ValueKind != JsonValueKind.Null ? v : null;

    public bool Has(string key) => Get(key) is not null;

    public string RequiredString(string key) => OptionalString(key) ?? throw Missing(key, "a string");

    public string? OptionalString(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        { } v => throw Wrong(key, v, "a string"),
    };

    public bool OptionalBool(string key, bool fallback) => Get(key) switch
    {
        null => fallback,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { } v => throw Wrong(key, v, "true or false"),
    };

    /// <summary>
    /// The largest token id a tokenizer.json may use: 2^24 − 1, 64 times the largest vocabularies in use (262,144),
    /// so that an id table sized by it stays small and a corrupt id is an error, not an allocation.
    /// </summary>
    public const int MaxTokenId = (1 << 24) - 1;

    /// <summary>The id of <paramref name="value"/> when it is an integer in [0, <see cref="MaxTokenId"/>].</summary>
    public static bool TryGetTokenId(JsonElement value, out int id)
    {
        if (value.ValueKind == JsonValueKind.Number && value.TryGetInt32(out id) && id is >= 0 and <= MaxTokenId)
        {
            return true;
        }

        id = -1;
        return false;
    }

    /// <summary>A token id under <paramref name="key"/>: an integer in [0, <see cref="MaxTokenId"/>].</summary>
    public int RequiredTokenId(string key) => Get(key) switch
    {
        null => throw Missing(key, "a token id"),
        { } v when TryGetTokenId(v, out int i) => i,
        { } v => throw Wrong(key, v, $"a token id in [0, {MaxTokenId}]"),
    };

    public int RequiredInt(string key) => Get(key) switch
    {
        null => throw Missing(key, "an integer"),
        { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int i) => i,
        { } v => throw Wrong(key, v, "an integer"),
    };

    public int OptionalInt(string key, int fallback) => Has(key) ? RequiredInt(key) : fallback;

    public TokenizerJson? OptionalObject(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Object } v => new TokenizerJson(v, source, Where(key)),
        { } v => throw Wrong(key, v, "an object or null"),
    };

    public TokenizerJson RequiredObject(string key) => OptionalObject(key) ?? throw Missing(key, "an object");

    /// <summary>The objects of an array field (each element must be an object).</summary>
    public List<TokenizerJson> ObjectArray(string key)
    {
        JsonElement array = Get(key) ?? throw Missing(key, "an array");
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw Wrong(key, array, "an array");
        }

        var items = new List<TokenizerJson>(array.GetArrayLength());
        int i = 0;
        foreach (JsonElement item in array.EnumerateArray())
        {
            string where = $"{Where(key)}[{i++}]";
            if (item.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{source}: '{where}' is {Describe(item)}, expected an object");
            }

            items.Add(new TokenizerJson(item, source, where));
        }

        return items;
    }

    /// <summary>A Split/Replace "pattern" field: {"String": s} or {"Regex": r}.</summary>
    public (string Text, bool IsRegex) Pattern(string key)
    {
        TokenizerJson pattern = RequiredObject(key);
        if (pattern.OptionalString("String") is { } s)
        {
            return (s, false);
        }

        if (pattern.OptionalString("Regex") is { } r)
        {
            return (r, true);
        }

        throw new InvalidDataException($"{source}: '{Where(key)}' must hold \"String\" or \"Regex\"");
    }

    public InvalidDataException Missing(string key, string expected) =>
        new($"{source}: '{Where(key)}' is missing, expected {expected}");

    public InvalidDataException Wrong(string key, JsonElement value, string expected) =>
        new($"{source}: '{Where(key)}' is {Describe(value)}, expected {expected}");

    public NotSupportedException Unsupported(string what, string? type) =>
        new($"{source}: {what} type '{type}' at '{(path.Length == 0 ? "(root)" : path)}' is not supported");

    public static string Describe(JsonElement value)
    {
        string raw = value.GetRawText();
        return $"{value.ValueKind.ToString().ToLowerInvariant()} {(raw.Length > 40 ? raw[..40] + "…" : raw)}";
    }
}
