using System.Text.Json;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Reads preference pairs from JSONL into <see cref="DirectPreference.TrainingRow"/> rows, in TRL's two layouts:
/// <list type="bullet">
/// <item>text: <c>{"prompt": "…", "chosen": "…", "rejected": "…"}</c>: the prompt with the tokenizer's special tokens
/// (BOS), each completion without them and followed by EOS;</item>
/// <item>conversational: <c>{"prompt": [messages], "chosen": [assistant messages], "rejected": [assistant messages]}</c>
/// (or completions as plain strings, each one assistant message), rendered by the chat template: the prompt is what the
/// template writes before the first assistant reply, the completion everything after it.</item>
/// </list>
/// Errors name the file, the line and the field.
/// </summary>
public static class PreferenceDataset
{
    /// <summary>Reads every pair of <paramref name="path"/>.</summary>
    public static IReadOnlyList<TokenRow> Load(string path, ITextTokenizer tokenizer, ChatTemplate? chatTemplate = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return JsonRows.Read(path, "preference pairs", "\"prompt\", \"chosen\" and \"rejected\"", (root, line) => Parse(root, tokenizer, chatTemplate, line), cancellationToken);
    }

    private static TokenRow Parse(JsonElement root, ITextTokenizer tokenizer, ChatTemplate? template, int line)
    {
        JsonElement Field(string name) => root.TryGetProperty(name, out var v) ? v : throw new InvalidDataException($"missing \"{name}\"");
        var (prompt, chosen, rejected) = (Field("prompt"), Field("chosen"), Field("rejected"));
        if (prompt.ValueKind == JsonValueKind.String)
        {
            int eos = tokenizer.EosTokenId ?? throw new InvalidDataException("the tokenizer has no EOS token to end the completions with");
            int[] Completion(JsonElement e, string name) => e.ValueKind == JsonValueKind.String && e.GetString()!.Trim().Length > 0
                ? [.. tokenizer.Encode(e.GetString()!, addSpecialTokens: false), eos]
                : throw new InvalidDataException($"\"{name}\" must be a non-empty string like \"prompt\", got {ChatMessageList.Describe(e)}");
            return DirectPreference.TrainingRow(tokenizer.Encode(prompt.GetString()!, addSpecialTokens: true), Completion(chosen, "chosen"), Completion(rejected, "rejected"), line);
        }

        if (template is null)
        {
            throw new InvalidDataException($"\"prompt\" holds chat messages but no chat template was given; set {ChatTemplate.OptionName} to one of {string.Join(", ", ChatTemplate.Names)} (or load the model's tokenizer_config.json)");
        }

        var promptMessages = ChatMessageList.Parse(prompt, "prompt");
        var (promptIds, chosenIds) = Conversation(tokenizer, template, promptMessages, chosen, "chosen");
        var (rejectedPrompt, rejectedIds) = Conversation(tokenizer, template, promptMessages, rejected, "rejected");
        if (!promptIds.AsSpan().SequenceEqual(rejectedPrompt))
        {
            throw new InvalidDataException($"the chat template writes the prompt differently before \"chosen\" and \"rejected\" ({promptIds.Length} and {rejectedPrompt.Length} tokens)");
        }

        return DirectPreference.TrainingRow(promptIds, chosenIds, rejectedIds, line);
    }

    // The prompt messages followed by a completion (assistant messages, or one string), rendered and tokenized: the tokens
    // before the first assistant token, and the rest.
    private static (int[] Prompt, int[] Completion) Conversation(ITextTokenizer tokenizer, ChatTemplate template, List<ChatMessage> prompt, JsonElement completion, string name)
    {
        var reply = completion.ValueKind == JsonValueKind.String
            ? [new ChatMessage(ChatRole.Assistant, completion.GetString()!)]
            : ChatMessageList.Parse(completion, name);
        if (reply.Any(static m => m.Role != ChatRole.Assistant) || reply.All(static m => m.Content.Trim().Length == 0))
        {
            throw new InvalidDataException($"\"{name}\" must hold the assistant's reply (non-empty, role assistant)");
        }

        var row = DatasetTokenization.Chat(tokenizer, template.Render([.. prompt, .. reply]), new TextDatasetOptions(), 0);
        int start = Array.FindIndex(row.Labels!, static l => l != CrossEntropy.IgnoreIndex);
        return start > 0
            ? (row.InputIds[..start], row.InputIds[start..])
            : throw new InvalidDataException($"\"{name}\": the chat template left no prompt tokens before the reply");
    }
}
