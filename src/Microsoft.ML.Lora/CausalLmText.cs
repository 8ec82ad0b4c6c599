using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// How a causal-LM pipeline step turns its text columns into tokens, the same way for training and for
/// generation: a prompt is encoded with the tokenizer's special tokens (BOS), a completion after it
/// without; a conversation is rendered by the chat template and its pieces encoded without special tokens
/// (the template writes them). See <see cref="DatasetTokenization"/>.
/// </summary>
internal sealed class CausalLmText
{
    private readonly LoraCausalLmOptions options;
    private readonly ChatTemplate? template;

    public CausalLmText(Tokenizer tokenizer, LoraCausalLmOptions options)
    {
        Tokenizer = tokenizer;
        this.options = options;
        template = options.MessagesColumn is null ? null : options.ChatTemplate ?? ChatTemplate.Resolve(null, options.ModelPath);
    }

    public Tokenizer Tokenizer { get; }

    /// <summary>Checks the columns Fit reads before anything is loaded.</summary>
    public static void CheckTrainingColumns(TextTable data, LoraCausalLmOptions options)
    {
        PipelineColumns.RequireRows(data, "LoraCausalLmEstimator.Fit");
        if (options.MessagesColumn is string messages)
        {
            PipelineColumns.Conversations(data, messages, "LoraCausalLmOptions.MessagesColumn");
        }
        else
        {
            PipelineColumns.Texts(data, options.PromptColumn, "LoraCausalLmOptions.PromptColumn");
            PipelineColumns.Texts(data, options.CompletionColumn, "LoraCausalLmOptions.CompletionColumn");
        }
    }

    /// <summary>One training row per table row; loss on the completion / assistant turns unless TrainOnPrompt.</summary>
    public List<TokenRow> TrainingRows(TextTable data, CancellationToken cancellationToken)
    {
        var tokenization = new TextDatasetOptions { TrainOnPrompt = options.TrainOnPrompt };
        var rows = new List<TokenRow>(data.RowCount);
        if (options.MessagesColumn is string messagesColumn)
        {
            var conversations = PipelineColumns.Conversations(data, messagesColumn, "LoraCausalLmOptions.MessagesColumn");
            for (int i = 0; i < conversations.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                ChatRendering rendering;
                try
                {
                    rendering = template!.Render(conversations[i]);
                }
                catch (ArgumentException e)
                {
                    throw new ArgumentException($"column '{messagesColumn}' (LoraCausalLmOptions.MessagesColumn), row {i}: {e.Message}", e);
                }

                rows.Add(Checked(DatasetTokenization.Chat(Tokenizer, rendering, tokenization, i + 1), messagesColumn, i, "no assistant turn to learn"));
            }
        }
        else
        {
            var prompts = PipelineColumns.Texts(data, options.PromptColumn, "LoraCausalLmOptions.PromptColumn");
            var completions = PipelineColumns.Texts(data, options.CompletionColumn, "LoraCausalLmOptions.CompletionColumn");
            for (int i = 0; i < prompts.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                rows.Add(Checked(DatasetTokenization.PromptCompletion(Tokenizer, prompts[i], completions[i], tokenization, i + 1), options.CompletionColumn, i, "the completion has no tokens"));
            }
        }

        return rows;
    }

    /// <summary>Token ids of a prompt to continue.</summary>
    public int[] PromptIds(string prompt)
    {
        int[] ids = Tokenizer.Encode(prompt, addSpecialTokens: true);
        return ids.Length > 0 ? ids : throw new ArgumentException($"the prompt '{prompt}' encodes to no tokens");
    }

    /// <summary>
    /// Token ids of a conversation up to the header of the next assistant reply. A conversation that ends
    /// with an assistant turn (a training row) is answered without that turn.
    /// </summary>
    public int[] ConversationIds(IReadOnlyList<ChatMessage> messages)
    {
        if (template is null)
        {
            throw new InvalidOperationException("this step was configured without LoraCausalLmOptions.MessagesColumn; pass prompts instead of conversations");
        }

        var asked = messages.Count > 1 && messages[^1].Role == ChatRole.Assistant ? messages.Take(messages.Count - 1).ToList() : messages;
        var rendering = template.Render(asked, addGenerationPrompt: true);
        return [.. rendering.Segments.SelectMany(s => Tokenizer.Encode(s.Text, addSpecialTokens: false))];
    }

    private static TokenRow Checked(TokenRow row, string column, int index, string why) =>
        DatasetTokenization.HasTarget(row) ? row : throw new ArgumentException($"column '{column}', row {index}: nothing to train on ({why})");
}
