using System.Text;
using System.Text.Json;

namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// Parses the JSON of checkpoint files: strict UTF-8 (decoded up front, because JsonElement.GetString
/// would otherwise throw InvalidOperationException on bad bytes), no duplicate keys, shallow nesting.
/// </summary>
internal static class StrictJson
{
    private static readonly UTF8Encoding Utf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static readonly JsonDocumentOptions Options = new() { AllowDuplicateProperties = false, MaxDepth = 16 };

    /// <summary>Parses <paramref name="utf8"/>; failures are <see cref="InvalidDataException"/> naming <paramref name="file"/> and <paramref name="what"/>.</summary>
    public static JsonDocument Parse(ReadOnlySpan<byte> utf8, string file, string what)
    {
        string text;
        try
        {
            text = Utf8.GetString(utf8);
        }
        catch (DecoderFallbackException e)
        {
            throw new InvalidDataException($"{file}: {what} is not valid UTF-8 ({e.Message})", e);
        }

        return Parse(text, file, what);
    }

    /// <summary>Parses <paramref name="text"/>; failures are <see cref="InvalidDataException"/> naming <paramref name="file"/> and <paramref name="what"/>.</summary>
    public static JsonDocument Parse(string text, string file, string what)
    {
        try
        {
            return JsonDocument.Parse(text, Options);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{file}: {what} is not valid JSON: {e.Message}", e);
        }
        catch (ArgumentException e)
        {
            // A string with unpaired surrogates cannot be transcoded to UTF-8.
            throw new InvalidDataException($"{file}: {what} is not valid text: {e.Message}", e);
        }
    }
}
