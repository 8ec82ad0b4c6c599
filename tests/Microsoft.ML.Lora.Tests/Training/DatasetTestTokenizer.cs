using System.Text;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// A deterministic stand-in for a real tokenizer: one id per UTF-8 byte (id = byte value), plus special
/// tokens from 256 that are recognised as whole strings in the text, as Hugging Face added tokens are.
/// <c>addSpecialTokens</c> prepends BOS (Llama's post-processor).
/// </summary>
internal sealed class DatasetTestTokenizer : ITextTokenizer
{
    public const int Bos = 256;
    public const int Eos = 257;
    public const int Pad = 258;
    public const int ImStart = 259;
    public const int ImEnd = 260;
    public const int BeginOfText = 261;
    public const int StartHeader = 262;
    public const int EndHeader = 263;
    public const int EotId = 264;
    public const int VocabSize = 265;

    private static readonly (string Text, int Id)[] Specials =
    [
        ("<s>", Bos), ("</s>", Eos), ("<pad>", Pad), ("<|im_start|>", ImStart), ("<|im_end|>", ImEnd),
        ("<|begin_of_text|>", BeginOfText), ("<|start_header_id|>", StartHeader), ("<|end_header_id|>", EndHeader), ("<|eot_id|>", EotId),
    ];

    public DatasetTestTokenizer(bool hasEos = true)
    {
        EosTokenId = hasEos ? Eos : null;
    }

    /// <summary>How many times Encode ran (streaming tests count tokenizer work).</summary>
    public int EncodeCalls { get; private set; }

    public int? BosTokenId => Bos;

    public int? EosTokenId { get; }

    public int? PadTokenId => Pad;

    /// <summary>The byte ids of <paramref name="text"/> with no special-token matching (for expected values).</summary>
    public static int[] Bytes(string text) => Encoding.UTF8.GetBytes(text).Select(static b => (int)b).ToArray();

    public int[] Encode(string text, bool addSpecialTokens)
    {
        EncodeCalls++;
        var ids = new List<int>();
        if (addSpecialTokens)
        {
            ids.Add(Bos);
        }

        int plainStart = 0;
        for (int i = 0; i < text.Length;)
        {
            var hit = Specials.FirstOrDefault(s => string.CompareOrdinal(text, i, s.Text, 0, s.Text.Length) == 0);
            if (hit.Text is null)
            {
                i++;
                continue;
            }

            ids.AddRange(Bytes(text[plainStart..i]));
            ids.Add(hit.Id);
            i += hit.Text.Length;
            plainStart = i;
        }

        ids.AddRange(Bytes(text[plainStart..]));
        return [.. ids];
    }

    public string Decode(ReadOnlySpan<int> ids, bool skipSpecialTokens = false)
    {
        var text = new StringBuilder();
        var bytes = new List<byte>();
        foreach (int id in ids)
        {
            if (id < 256)
            {
                bytes.Add((byte)id);
                continue;
            }

            text.Append(Encoding.UTF8.GetString([.. bytes]));
            bytes.Clear();
            if (!skipSpecialTokens)
            {
                text.Append(Specials.Single(s => s.Id == id).Text);
            }
        }

        return text.Append(Encoding.UTF8.GetString([.. bytes])).ToString();
    }

    public int? TokenToId(string token)
    {
        var hit = Specials.FirstOrDefault(s => s.Text == token);
        if (hit.Text is not null)
        {
            return hit.Id;
        }

        byte[] b = Encoding.UTF8.GetBytes(token);
        return b.Length == 1 ? b[0] : null;
    }
}
