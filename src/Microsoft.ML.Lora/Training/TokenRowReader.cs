using System.Text.Json;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Reads pre-tokenized JSONL: one object per line with <c>input_ids</c> (int array), optional <c>labels</c> (same
/// length, −100 = ignored) and optional <c>attention_mask</c> (same length, 0 = padding: padded positions at the start
/// or the end of the row are dropped, as the masked computation ignores them). Blank lines are skipped. Every error
/// names the file and line.
/// </summary>
public static class TokenRowReader
{
    /// <summary>Reads every row of <paramref name="path"/>; throws <see cref="InvalidDataException"/> on bad rows or an empty file.</summary>
    /// <param name="path">The JSONL file.</param>
    /// <param name="vocabSize">When given, ids and labels must be below it.</param>
    public static List<TokenRow> ReadAll(string path, int? vocabSize = null)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"data file '{path}' not found", path);
        }

        var rows = new List<TokenRow>();
        int lineNumber = 0;
        foreach (string line in File.ReadLines(path))
        {
            lineNumber++;
            if (string.IsNullOrWhiteSpace(line))
            {
                continue;
            }

            rows.Add(ParseLine(line, path, lineNumber, vocabSize));
        }

        if (rows.Count == 0)
        {
            throw new InvalidDataException($"{path}: no rows (the file is empty); expected one JSON object per line with \"input_ids\"");
        }

        return rows;
    }

    /// <summary>Parses one JSONL line.</summary>
    public static TokenRow ParseLine(string line, string path, int lineNumber, int? vocabSize = null)
    {
        string where = $"{path} line {lineNumber}";
        try
        {
            using var doc = JsonDocument.Parse(line);
            if (doc.RootElement.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{where}: expected a JSON object, got {doc.RootElement.ValueKind}");
            }

            if (!doc.RootElement.TryGetProperty("input_ids", out var idsElement))
            {
                throw new InvalidDataException($"{where}: missing \"input_ids\"");
            }

            int[] ids = ReadInts(idsElement, where, "input_ids", vocabSize, allowIgnore: false);
            if (ids.Length == 0)
            {
                throw new InvalidDataException($"{where}: \"input_ids\" is empty");
            }

            int[]? labels = null;
            if (doc.RootElement.TryGetProperty("labels", out var labelsElement) && labelsElement.ValueKind != JsonValueKind.Null)
            {
                labels = ReadInts(labelsElement, where, "labels", vocabSize, allowIgnore: true);
                if (labels.Length != ids.Length)
                {
                    throw new InvalidDataException($"{where}: \"labels\" has {labels.Length} entries but \"input_ids\" has {ids.Length}");
                }
            }

            if (doc.RootElement.TryGetProperty("attention_mask", out var maskElement) && maskElement.ValueKind != JsonValueKind.Null)
            {
                var (start, length) = Unpadded(ReadMask(maskElement, where, ids.Length), where);
                ids = ids.AsSpan(start, length).ToArray();
                labels = labels?.AsSpan(start, length).ToArray();
            }

            return new TokenRow(ids, labels, lineNumber);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{where}: not valid JSON ({e.Message})", e);
        }
    }

    // attention_mask: one 0 or 1 per input id.
    private static bool[] ReadMask(JsonElement array, string where, int length)
    {
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"{where}: \"attention_mask\" must be an array of 0 and 1, got {array.ValueKind}");
        }

        if (array.GetArrayLength() != length)
        {
            throw new InvalidDataException($"{where}: \"attention_mask\" has {array.GetArrayLength()} entries but \"input_ids\" has {length}");
        }

        var mask = new bool[length];
        int i = 0;
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int value) || value is not (0 or 1))
            {
                throw new InvalidDataException($"{where}: \"attention_mask\"[{i}] is {e.GetRawText()}; expected 0 (padding) or 1");
            }

            mask[i++] = value == 1;
        }

        return mask;
    }

    // The row without its padding: the attended tokens must be one run, padded on the left, the right or both.
    private static (int Start, int Length) Unpadded(bool[] mask, string where)
    {
        int start = Array.IndexOf(mask, true);
        if (start < 0)
        {
            throw new InvalidDataException($"{where}: \"attention_mask\" is all 0: the row has no token to train on");
        }

        int end = Array.LastIndexOf(mask, true) + 1;
        int hole = Array.IndexOf(mask, false, start, end - start);
        if (hole >= 0)
        {
            throw new InvalidDataException($"{where}: \"attention_mask\"[{hole}] is 0 between attended tokens; only padding at the start or the end of a row is supported");
        }

        return (start, end - start);
    }

    private static int[] ReadInts(JsonElement array, string where, string field, int? vocabSize, bool allowIgnore)
    {
        if (array.ValueKind != JsonValueKind.Array)
        {
            throw new InvalidDataException($"{where}: \"{field}\" must be an array of integers, got {array.ValueKind}");
        }

        var result = new int[array.GetArrayLength()];
        int i = 0;
        foreach (var e in array.EnumerateArray())
        {
            if (e.ValueKind != JsonValueKind.Number || !e.TryGetInt32(out int value))
            {
                throw new InvalidDataException($"{where}: \"{field}\"[{i}] is {e.GetRawText()}, not a 32-bit integer");
            }

            bool ignored = allowIgnore && value == CrossEntropy.IgnoreIndex;
            if (!ignored && (value < 0 || (vocabSize is int v && value >= v)))
            {
                string range = vocabSize is int vs ? $"[0, {vs})" : "non-negative";
                string also = allowIgnore ? " or -100" : string.Empty;
                throw new InvalidDataException($"{where}: \"{field}\"[{i}] = {value} is outside the vocabulary: expected {range}{also}");
            }

            result[i++] = value;
        }

        return result;
    }
}
