using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// How the causal-LM step turns prompt and completion texts into tokens, the same way in training and
/// generation, and as the dataset readers of the CLI and the service do (<see cref="DatasetTokenization"/>):
/// the prompt with the tokenizer's special tokens (BOS), the completion after it without, then EOS; the loss
/// falls on the completion and EOS unless TrainOnPrompt.
/// </summary>
internal sealed class PromptText(Tokenizer tokenizer, bool trainOnPrompt)
{
    private readonly TextDatasetOptions tokenization = new() { TrainOnPrompt = trainOnPrompt };

    public Tokenizer Tokenizer => tokenizer;

    /// <summary>A training row; null when it has nothing to learn (the completion has no tokens).</summary>
    public TokenRow? TrainingRow(string prompt, string completion, int line)
    {
        var row = DatasetTokenization.PromptCompletion(tokenizer, prompt, completion, tokenization, line);
        return DatasetTokenization.HasTarget(row) ? row : null;
    }

    /// <summary>Token ids of a prompt to continue.</summary>
    /// <exception cref="ArgumentException">The prompt encodes to no tokens.</exception>
    public int[] PromptIds(string prompt)
    {
        int[] ids = tokenizer.Encode(prompt, addSpecialTokens: true);
        return ids.Length > 0 ? ids : throw new ArgumentException($"the prompt '{prompt}' encodes to no tokens");
    }
}
