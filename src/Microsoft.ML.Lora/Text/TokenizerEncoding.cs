namespace Microsoft.ML.Lora.Text;

/// <summary>
/// Token ids of a text with, for each token, the [Start, End) char range of the input it came from.
/// Special tokens added around the text have the empty range (0, 0); several tokens may share a
/// range (the byte tokens of one char); a token made only of text the normalizer inserted (the "▁"
/// of SentencePiece models) has an empty range at its position.
/// </summary>
public sealed class TokenizerEncoding
{
    internal TokenizerEncoding(int[] ids, (int Start, int End)[] offsets)
    {
        Ids = ids;
        Offsets = offsets;
    }

    public int[] Ids { get; }

    public (int Start, int End)[] Offsets { get; }
}
