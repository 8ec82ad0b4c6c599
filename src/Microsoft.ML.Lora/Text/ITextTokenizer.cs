namespace Microsoft.ML.Lora.Text;

/// <summary>
/// What the data pipeline needs from a tokenizer. Implementations must map special-token strings that
/// appear in the text (<c>&lt;|im_start|&gt;</c>, <c>&lt;s&gt;</c>, …) to their ids, as Hugging Face
/// tokenizers do for added tokens: chat templates write those markers as text.
/// </summary>
public interface ITextTokenizer
{
    /// <summary>Token ids of <paramref name="text"/>; <paramref name="addSpecialTokens"/> adds what the tokenizer's post-processor adds (usually BOS).</summary>
    int[] Encode(string text, bool addSpecialTokens);

    /// <summary>Text of <paramref name="ids"/>.</summary>
    string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false);

    /// <summary>Beginning-of-sequence id, if the tokenizer has one.</summary>
    int? BosTokenId { get; }

    /// <summary>End-of-sequence id, if the tokenizer has one.</summary>
    int? EosTokenId { get; }

    /// <summary>Padding id, if the tokenizer has one.</summary>
    int? PadTokenId { get; }

    /// <summary>The id of one token string, or null when it is not in the vocabulary.</summary>
    int? TokenToId(string token);
}
