using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora;

/// <summary>
/// Options of <see cref="LoraCausalLmEstimator"/>: supervised fine-tuning (SFT) of a causal LM with
/// LoRA or QLoRA on prompt/completion or chat-message rows. Immutable; <see cref="Validate"/> throws
/// <see cref="ArgumentException"/> naming the option and the value.
/// </summary>
public sealed record LoraCausalLmOptions : LoraFineTuningOptions
{
    /// <summary>Text column of the prompts (string). Default "Prompt". Unused when <see cref="MessagesColumn"/> is set.</summary>
    public string PromptColumn { get; init; } = "Prompt";

    /// <summary>Text column of the completions to learn (string). Default "Completion". Not needed by Transform.</summary>
    public string CompletionColumn { get; init; } = "Completion";

    /// <summary>
    /// Column of chat conversations (<c>IReadOnlyList&lt;ChatMessage&gt;</c>). Default null: rows are prompt/completion.
    /// When set, training learns the assistant turns, and Transform answers each conversation (without its
    /// last assistant turn, when it ends with one).
    /// </summary>
    public string? MessagesColumn { get; init; }

    /// <summary>Chat template for <see cref="MessagesColumn"/>; null = detected from the model folder's tokenizer_config.json.</summary>
    public ChatTemplate? ChatTemplate { get; init; }

    /// <summary>Train on prompt tokens too. Default false: loss on the completion (and EOS) only, as TRL's SFT does.</summary>
    public bool TrainOnPrompt { get; init; }

    /// <summary>Column Transform adds with the generated text (string). Default "GeneratedText".</summary>
    public string OutputColumn { get; init; } = "GeneratedText";

    /// <summary>How Transform generates. Default greedy, up to 128 new tokens; empty StopTokenIds means the tokenizer's EOS.</summary>
    public GenerationOptions Generation { get; init; } = new();

    /// <summary>
    /// Prompts generated together: prompts with the same token count share one forward pass per token, up to
    /// this many at a time. Default 8; 1 generates one prompt at a time.
    /// </summary>
    public int GenerationBatchSize { get; init; } = 8;

    /// <inheritdoc/>
    public override void Validate()
    {
        base.Validate();
        ArgumentNullException.ThrowIfNull(Generation, nameof(Generation));
        if (GenerationBatchSize < 1)
        {
            throw new ArgumentException($"LoraCausalLmOptions.GenerationBatchSize = {GenerationBatchSize} is invalid: expected at least 1", nameof(GenerationBatchSize));
        }

        RequireColumnName(nameof(OutputColumn), OutputColumn);
        if (MessagesColumn is null)
        {
            RequireColumnName(nameof(PromptColumn), PromptColumn);
            RequireColumnName(nameof(CompletionColumn), CompletionColumn);
            if (PromptColumn == CompletionColumn)
            {
                throw new ArgumentException($"LoraCausalLmOptions.PromptColumn and CompletionColumn are both '{PromptColumn}'; the completion needs its own column", nameof(CompletionColumn));
            }
        }
        else
        {
            RequireColumnName(nameof(MessagesColumn), MessagesColumn);
        }
    }
}
