using System.Buffers;

namespace Microsoft.ML.Lora.Text;

/// <summary>One entry of tokenizer.json's "added_tokens".</summary>
internal sealed record AddedToken(int Id, string Content, bool Special, bool Normalized, bool LStrip, bool RStrip, bool SingleWord)
{
    public static AddedToken Parse(TokenizerJson j) => new(
        j.RequiredTokenId("id"),
        j.RequiredString("content") is { Length: > 0 } content ? content : throw new InvalidDataException($"{j.Source}: '{j.Where("content")}' is empty"),
        j.OptionalBool("special", false),
        j.OptionalBool("normalized", true),
        j.OptionalBool("lstrip", false),
        j.OptionalBool("rstrip", false),
        j.OptionalBool("single_word", false));
}

/// <summary>
/// Finds added tokens in text before the model sees it: scanning left to right, at each position the
/// longest token that matches wins (leftmost-longest). lstrip/rstrip widen a match over the
/// whitespace beside it; single_word rejects a match touching a word char on either side.
/// </summary>
internal sealed class AddedTokenMatcher
{
    private readonly Dictionary<char, (string Content, AddedToken Token)[]> _byFirstChar;
    private readonly SearchValues<char> _firstChars;

    /// <param name="tokens">Tokens with the text to find (raw content, or content after normalization).</param>
    public AddedTokenMatcher(IEnumerable<(string Content, AddedToken Token)> tokens)
    {
        _byFirstChar = tokens
            .Where(t => t.Content.Length > 0)
            .GroupBy(t => t.Content[0])
            .ToDictionary(g => g.Key, g => g.OrderByDescending(t => t.Content.Length).ThenBy(t => t.Token.Id).ToArray());
        _firstChars = SearchValues.Create(_byFirstChar.Keys.ToArray());
    }

    public bool IsEmpty => _byFirstChar.Count == 0;

    /// <summary>Appends the matches in text[start, end) as (start, end, token), in order.</summary>
    public void FindAll(string text, int start, int end, List<(int Start, int End, AddedToken Token)> found)
    {
        int floor = start;
        int i = start;
        while (i < end)
        {
            int next = text.AsSpan(i, end - i).IndexOfAny(_firstChars);
            if (next < 0)
            {
                return;
            }

            i += next;
            bool matched = false;
            foreach (var (content, token) in _byFirstChar[text[i]])
            {
                if (content.Length > end - i || !text.AsSpan(i, content.Length).SequenceEqual(content))
                {
                    continue;
                }

                int mEnd = i + content.Length;
                if (token.SingleWord && ((i > start && IsWordChar(text[i - 1])) || (mEnd < end && IsWordChar(text[mEnd]))))
                {
                    continue;
                }

                int mStart = i;
                if (token.LStrip)
                {
                    while (mStart > floor && char.IsWhiteSpace(text[mStart - 1]))
                    {
                        mStart--;
                    }
                }

                if (token.RStrip)
                {
                    while (mEnd < end && char.IsWhiteSpace(text[mEnd]))
                    {
                        mEnd++;
                    }
                }

                found.Add((mStart, mEnd, token));
                floor = mEnd;
                i = mEnd;
                matched = true;
                break;
            }

            if (!matched)
            {
                i++;
            }
        }
    }

    private static bool IsWordChar(char c) => char.IsLetterOrDigit(c) || c == '_';
}
