using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>A JSON list of <c>{"role", "content"}</c> objects as chat messages; errors name the field and index.</summary>
internal static class ChatMessageList
{
    /// <summary>Parses <paramref name="list"/> (the value of <paramref name="field"/>); throws <see cref="InvalidDataException"/> naming what is wrong.</summary>
    public static List<ChatMessage> Parse(JsonElement list, string field)
    {
        if (list.ValueKind != JsonValueKind.Array || list.GetArrayLength() == 0)
        {
            throw new InvalidDataException($"\"{field}\" must be a non-empty array of {{\"role\", \"content\"}} objects, got {Describe(list)}");
        }

        var messages = new List<ChatMessage>();
        int i = 0;
        foreach (var m in list.EnumerateArray())
        {
            string where = $"\"{field}\"[{i++}]";
            if (m.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{where} must be an object, got {Describe(m)}");
            }

            string role = Text(m, "role", where);
            var parsed = ChatMessage.TryParseRole(role) ?? throw new InvalidDataException($"{where}: role \"{role}\" is not one of system, user, assistant");
            messages.Add(new ChatMessage(parsed, Text(m, "content", where)));
        }

        return messages;
    }

    /// <summary>A JSON value for error messages: its kind and its first 40 characters.</summary>
    public static string Describe(JsonElement e)
    {
        string raw = e.GetRawText();
        return $"{e.ValueKind} {(raw.Length <= 40 ? raw : raw[..40] + "…")}";
    }

    private static string Text(JsonElement obj, string field, string where)
    {
        if (!obj.TryGetProperty(field, out var value))
        {
            throw new InvalidDataException($"{where}: missing \"{field}\"");
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new InvalidDataException($"{where}: \"{field}\" must be a string, got {Describe(value)}");
    }
}
