using System.Text.Json;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// Typed field access to a config.json object; every missing or wrong-typed field becomes an
/// <see cref="InvalidDataException"/> naming the file, the field and the value seen. JSON null counts as absent.
/// </summary>
internal sealed class ConfigReader(JsonElement element, string source, string path = "")
{
    /// <summary>Dotted path of this object inside the config, for messages ("" for the root).</summary>
    public string Path => path;

    public string RequiredString(string key) =>
        OptionalString(key) ?? throw Missing(key, "a string");

    public string? OptionalString(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.String } v => v.GetString(),
        { } v => throw Wrong(key, v, "a string"),
    };

    public int RequiredInt(string key) =>
        OptionalInt(key) ?? throw Missing(key, "an integer");

    public int? OptionalInt(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v when v.TryGetInt32(out int i) => i,
        { } v => throw Wrong(key, v, $"an integer in {int.MinValue}..{int.MaxValue}"),
    };

    public double? OptionalDouble(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Number } v when v.TryGetDouble(out double d) && double.IsFinite(d) => d,
        { } v => throw Wrong(key, v, "a finite number"),
    };

    public double RequiredPositive(string key)
    {
        double value = OptionalDouble(key) ?? throw Missing(key, "a positive number");
        return value > 0 ? value : throw Wrong(key, Get(key)!.Value, "a positive number");
    }

    public bool? OptionalBool(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.True } => true,
        { ValueKind: JsonValueKind.False } => false,
        { } v => throw Wrong(key, v, "true or false"),
    };

    public ConfigReader? OptionalObject(string key) => Get(key) switch
    {
        null => null,
        { ValueKind: JsonValueKind.Object } v => new ConfigReader(v, source, Qualified(key)),
        { } v => throw Wrong(key, v, "an object or null"),
    };

    /// <summary><c>architectures[0]</c>, or null when the field is absent.</summary>
    public string? Architecture()
    {
        if (Get("architectures") is not { } v)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() == 0 || v[0].ValueKind != JsonValueKind.String)
        {
            throw Wrong("architectures", v, "a non-empty array of strings");
        }

        return v[0].GetString()!;
    }

    private JsonElement? Get(string key)
    {
        if (element.ValueKind == JsonValueKind.Object && element.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null)
        {
            return v;
        }

        return null;
    }

    private string Qualified(string key) => path.Length == 0 ? key : $"{path}.{key}";

    private InvalidDataException Missing(string key, string expected) =>
        new($"{source}: '{Qualified(key)}' is missing; expected {expected}");

    private InvalidDataException Wrong(string key, JsonElement value, string expected)
    {
        string raw = value.GetRawText();
        if (raw.Length > 60)
        {
            raw = raw[..60] + "…";
        }

        return new($"{source}: '{Qualified(key)}' is {raw}; expected {expected}");
    }
}
