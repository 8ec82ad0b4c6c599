using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Reads GRPO prompts from JSONL: <c>{"prompt": "…", …}</c> (tokenized with the tokenizer's special tokens) or
/// <c>{"prompt": [messages], …}</c> (rendered by the chat template with the assistant header after it). Every other string
/// field of the row (e.g. <c>"answer"</c>) is kept in <see cref="TokenRow.Fields"/> for the reward.
/// </summary>
public static class PromptDataset
{
    /// <summary>Reads every prompt of <paramref name="path"/>.</summary>
    public static IReadOnlyList<TokenRow> Load(string path, ITextTokenizer tokenizer, ChatTemplate? chatTemplate = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(tokenizer);
        return JsonRows.Read(path, "prompts", "\"prompt\"", (root, line) =>
        {
            var prompt = root.TryGetProperty("prompt", out var p) ? p : throw new InvalidDataException("missing \"prompt\"");
            int[] ids;
            if (prompt.ValueKind == JsonValueKind.String)
            {
                ids = prompt.GetString()!.Length > 0 ? tokenizer.Encode(prompt.GetString()!, addSpecialTokens: true) : throw new InvalidDataException("\"prompt\" is empty");
            }
            else
            {
                var template = chatTemplate ?? throw new InvalidDataException($"\"prompt\" holds chat messages but no chat template was given; set {ChatTemplate.OptionName} to one of {string.Join(", ", ChatTemplate.Names)}");
                string text = string.Concat(template.Render(ChatMessageList.Parse(prompt, "prompt"), addGenerationPrompt: true).Segments.Select(static s => s.Text));
                ids = tokenizer.Encode(text, addSpecialTokens: false);
            }

            var fields = root.EnumerateObject().Where(static f => f.Name != "prompt" && f.Value.ValueKind == JsonValueKind.String)
                .ToDictionary(static f => f.Name, static f => f.Value.GetString()!, StringComparer.Ordinal);
            return new TokenRow(ids, null, line, Fields: fields);
        }, cancellationToken);
    }
}
