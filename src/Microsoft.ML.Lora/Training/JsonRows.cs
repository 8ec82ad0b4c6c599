using System.Text.Json;

namespace Microsoft.ML.Lora.Training;

/// <summary>Reads a JSONL file of objects, one row per non-blank line; every error names the file and the line.</summary>
internal static class JsonRows
{
    public static IReadOnlyList<TokenRow> Read(string path, string what, string fields, Func<JsonElement, int, TokenRow> parse, CancellationToken cancellationToken)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"{full}: {what} not found", full);
        }

        var rows = new List<TokenRow>();
        using var reader = new DatasetLineReader(File.OpenRead(full));
        while (reader.TryReadLine(out string? text, out string? error))
        {
            cancellationToken.ThrowIfCancellationRequested();
            int line = reader.LineNumber;
            if (error is not null)
            {
                throw new InvalidDataException($"{full}:{line}: {error}");
            }

            if (string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            try
            {
                using var doc = JsonDocument.Parse(text);
                if (doc.RootElement.ValueKind != JsonValueKind.Object)
                {
                    throw new InvalidDataException($"expected a JSON object with {fields}, got {ChatMessageList.Describe(doc.RootElement)}");
                }

                rows.Add(parse(doc.RootElement, line));
            }
            catch (Exception e) when (e is InvalidDataException or JsonException or ArgumentException)
            {
                throw new InvalidDataException($"{full}:{line}: {e.Message}", e);
            }
        }

        return rows.Count > 0 ? rows : throw new InvalidDataException($"{full}: no {what} (expected JSON lines with {fields})");
    }
}
