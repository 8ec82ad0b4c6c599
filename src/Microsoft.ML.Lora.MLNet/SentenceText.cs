using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Token ids of one sentence or a sentence pair, the same way in training and prediction. Each sentence is
/// encoded with the tokenizer's special tokens (BOS for Llama-family tokenizers) and no EOS, as Hugging Face
/// prepares classifier inputs; a pair is the two encodings one after the other, which for a template
/// "BOS $A" is Hugging Face's pair template "BOS $A BOS $B". Too long an input is cut to
/// <see cref="MaxTokens"/> by dropping tokens from the end of the longer sentence first (longest_first).
/// </summary>
internal sealed class SentenceText(Tokenizer tokenizer, int maxTokens)
{
    public Tokenizer Tokenizer => tokenizer;

    public int MaxTokens => maxTokens;

    /// <summary>The ids of <paramref name="sentences"/> (one or two, each non-empty); <paramref name="onTruncated"/> is called when they are cut.</summary>
    /// <exception cref="ArgumentException">A sentence encodes to no tokens.</exception>
    public int[] Encode(IReadOnlyList<string> sentences, Action? onTruncated = null)
    {
        if (sentences.Count == 1)
        {
            int[] ids = EncodeOne(sentences[0]);
            if (ids.Length <= maxTokens)
            {
                return ids;
            }

            onTruncated?.Invoke();
            return ids[..maxTokens];
        }

        int[] a = EncodeOne(sentences[0]), b = EncodeOne(sentences[1]);
        if (a.Length + b.Length > maxTokens)
        {
            onTruncated?.Invoke();
        }

        int keepA = a.Length, keepB = b.Length;
        while (keepA + keepB > maxTokens)
        {
            // Ties cut the second sentence, as transformers' longest_first does.
            if (keepA > keepB)
            {
                keepA--;
            }
            else
            {
                keepB--;
            }
        }

        return [.. a.AsSpan(0, keepA), .. b.AsSpan(0, keepB)];
    }

    private int[] EncodeOne(string text)
    {
        int[] ids = tokenizer.Encode(text, addSpecialTokens: true);
        return ids.Length > 0 ? ids : throw new ArgumentException($"the text '{text}' encodes to no tokens");
    }
}
