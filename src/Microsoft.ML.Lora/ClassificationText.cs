using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora;

/// <summary>
/// Token ids of a text to classify, the same way in training and prediction: the tokenizer's special
/// tokens (BOS) added, no EOS (as Hugging Face's tokenizers prepare classifier inputs), cut to the first
/// <see cref="LoraTextClassificationOptions.MaxSequenceLength"/> tokens (and to the training row limit).
/// </summary>
internal sealed class ClassificationText(Tokenizer tokenizer, LoraTextClassificationOptions options)
{
    private readonly int maxTokens = Math.Min(options.MaxSequenceLength, options.Training.MaxSequenceLength);

    public Tokenizer Tokenizer => tokenizer;

    public int[] Encode(string text)
    {
        int[] ids = tokenizer.Encode(text, addSpecialTokens: true);
        if (ids.Length == 0)
        {
            throw new ArgumentException($"the text '{text}' encodes to no tokens");
        }

        return ids.Length <= maxTokens ? ids : ids[..maxTokens];
    }
}
