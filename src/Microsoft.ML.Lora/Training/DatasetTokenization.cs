using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Turns parsed rows into token ids and labels.
/// </summary>
/// <remarks>
/// The prompt and the trained part are tokenized separately and concatenated, as LLaMA-Factory, axolotl
/// and the Alpaca scripts do, rather than tokenizing the whole text and mapping character spans back:
/// the label boundary is exact by construction, and it is what inference sees — there the prompt is
/// tokenized alone and the reply is generated token by token from that boundary, so a merge across the
/// boundary that joint tokenization could produce never happens at inference either. Chat segments are
/// the runs of <see cref="ChatRendering.Segments"/>; template markers sit at almost every boundary, so
/// joint and split tokenization agree there for byte-level BPE tokenizers. (A SentencePiece-style
/// tokenizer that prepends a space to every call would add one at each boundary; tokenizers used here
/// must encode a piece exactly as it would be encoded mid-text.) Prompts are encoded with
/// <c>addSpecialTokens: true</c> so they get the BOS the tokenizer adds; completions and chat pieces without.
/// </remarks>
internal static class DatasetTokenization
{
    /// <summary>Plain text: every token is a target; EOS appended when asked.</summary>
    public static TokenRow Text(ITextTokenizer tokenizer, string text, TextDatasetOptions options, int line)
    {
        var ids = new List<int>(tokenizer.Encode(text, addSpecialTokens: true));
        AppendEos(tokenizer, ids, options);
        return new TokenRow([.. ids], null, line);
    }

    /// <summary>Prompt (with the tokenizer's BOS) + completion (+ EOS); prompt labels −100 unless TrainOnPrompt.</summary>
    public static TokenRow PromptCompletion(ITextTokenizer tokenizer, string prompt, string completion, TextDatasetOptions options, int line)
    {
        int[] promptIds = tokenizer.Encode(prompt, addSpecialTokens: true);
        var completionIds = new List<int>(tokenizer.Encode(completion, addSpecialTokens: false));
        AppendEos(tokenizer, completionIds, options);
        int[] ids = [.. promptIds, .. completionIds];
        if (options.TrainOnPrompt)
        {
            return new TokenRow(ids, null, line);
        }

        var labels = new int[ids.Length];
        Array.Fill(labels, CrossEntropy.IgnoreIndex, 0, promptIds.Length);
        completionIds.CopyTo(labels, promptIds.Length);
        return new TokenRow(ids, labels, line);
    }

    /// <summary>A rendered chat: the template writes BOS and turn markers, so no special tokens are added.</summary>
    public static TokenRow Chat(ITextTokenizer tokenizer, ChatRendering rendering, TextDatasetOptions options, int line)
    {
        var ids = new List<int>();
        var labels = new List<int>();
        foreach (var segment in rendering.Segments)
        {
            int[] pieceIds = tokenizer.Encode(segment.Text, addSpecialTokens: false);
            ids.AddRange(pieceIds);
            if (segment.IsAssistant || options.TrainOnPrompt)
            {
                labels.AddRange(pieceIds);
            }
            else
            {
                labels.AddRange(Enumerable.Repeat(CrossEntropy.IgnoreIndex, pieceIds.Length));
            }
        }

        return new TokenRow([.. ids], options.TrainOnPrompt ? null : [.. labels], line);
    }

    /// <summary>True when some position after the first has a label, i.e. the row has a target once shifted.</summary>
    public static bool HasTarget(TokenRow row)
    {
        int[] labels = row.Labels ?? row.InputIds;
        for (int i = 1; i < labels.Length; i++)
        {
            if (labels[i] != CrossEntropy.IgnoreIndex)
            {
                return true;
            }
        }

        return false;
    }

    private static void AppendEos(ITextTokenizer tokenizer, List<int> ids, TextDatasetOptions options)
    {
        if (options.AppendEos && tokenizer.EosTokenId is int eos && (ids.Count == 0 || ids[^1] != eos))
        {
            ids.Add(eos);
        }
    }
}
