using System.Text;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>Round trips and offsets on seeded random Unicode text.</summary>
public sealed class TokenizerPropertyTests
{
    private const int Strings = 2000;

    // Pools a random string draws from: whole code points, so surrogate pairs stay paired.
    private static readonly string[] Pool =
    [
        .. "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789".Select(c => c.ToString()),
        .. ".,;:!?'\"()[]{}<>-_=+*/\\|@#$%^&~`".Select(c => c.ToString()),
        " ", " ", "  ", "\t", "\n", "\r\n", "\u00A0", "\u3000", "\u2028",
        "é", "ñ", "ø", "ß", "Å", "ç", "\u0301", "\u0308", "\u0327", "e\u0301", "\u1100\u1161\u11A8",
        "日", "本", "語", "中", "文", "한", "국", "Р", "у", "с", "λ", "ά", "ע", "ب", "ि", "ก",
        "😀", "👍🏽", "👨‍👩‍👧‍👦", "🇫🇷", "❤️", "\u200D", "\u200B", "\uFEFF",
        "𝔘", "𝟏", "𝟐", "𠀀", "𐍈", "\U0010FFFD",
        " the", " and", "'s", "'ll", "123", "4567",
    ];

    public static TheoryData<string> Models => [TokenizerTestFiles.Llama2, TokenizerTestFiles.Llama3, TokenizerTestFiles.Qwen3];

    [Theory]
    [MemberData(nameof(Models))]
    public void Decode_of_encode_reproduces_the_text(string name)
    {
        var tokenizer = TokenizerTestFiles.Get(name);
        var rng = new Random(1234);
        int failed = 0;
        var failures = new StringBuilder();
        for (int k = 0; k < Strings; k++)
        {
            string s = RandomText(rng);
            // Qwen normalizes to NFC first; the others keep the text as is.
            string expected = name == TokenizerTestFiles.Qwen3 ? NormalizerUnicode.Normalize(s, compose: true) : s;
            string actual = tokenizer.Decode(tokenizer.Encode(s, addSpecialTokens: false));
            if (!string.Equals(expected, actual, StringComparison.Ordinal) && ++failed <= 5)
            {
                failures.AppendLine($"  {TokenizerReferenceTests.Show(s)} → {TokenizerReferenceTests.Show(actual)}");
            }
        }

        Assert.True(failed == 0, $"{name}: {failed}/{Strings} strings do not round-trip:\n{failures}");
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Offsets_are_monotone_cover_the_text_and_isolated_tokens_decode_to_their_span(string name)
    {
        var tokenizer = TokenizerTestFiles.Get(name);
        var rng = new Random(99);
        var texts = TokenizerTestFiles.Fixture(name).Cases.Select(c => c.Text).Concat(Enumerable.Range(0, 500).Select(_ => RandomText(rng)));
        bool byteLevel = name != TokenizerTestFiles.Llama2;
        int isolatedChecked = 0;
        foreach (string text in texts)
        {
            var encoding = tokenizer.EncodeWithOffsets(text, addSpecialTokens: false);
            Assert.Equal(tokenizer.Encode(text, addSpecialTokens: false), encoding.Ids);
            Assert.Equal(encoding.Ids.Length, encoding.Offsets.Length);
            var o = encoding.Offsets;
            int reach = 0;
            for (int i = 0; i < o.Length; i++)
            {
                string where = $"{name} {TokenizerReferenceTests.Show(text)} token {i} {o[i]}";
                Assert.True(o[i].Start >= 0 && o[i].Start <= o[i].End && o[i].End <= text.Length, where + ": out of range");
                Assert.True(i == 0 || o[i].Start >= o[i - 1].Start, where + ": start before previous start");
                Assert.True(o[i].Start <= reach, where + $": gap after {reach}");
                reach = Math.Max(reach, o[i].End);
                if (byteLevel)
                {
                    Assert.True(o[i].End > o[i].Start, where + ": empty span");
                }

                // A token that shares no char with its neighbours decodes to exactly its span
                // (the NFC text of it for Qwen, which is the span itself when the span is NFC).
                bool isolated = (i == 0 || o[i - 1].End <= o[i].Start) && (i == o.Length - 1 || o[i + 1].Start >= o[i].End);
                string span = text[o[i].Start..o[i].End];
                if (isolated && byteLevel && NormalizerUnicode.IsNormalized(span, compose: true))
                {
                    Assert.Equal(span, tokenizer.Decode([encoding.Ids[i]]));
                    isolatedChecked++;
                }
            }

            Assert.Equal(text.Length, reach);
        }

        Assert.True(!byteLevel || isolatedChecked > 5000, $"only {isolatedChecked} isolated tokens checked");
    }

    [Fact]
    public void Special_tokens_in_text_get_their_own_span()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.Qwen3);
        const string text = "hi <|im_start|>user\nyo<|im_end|>";
        var e = tokenizer.EncodeWithOffsets(text);
        int start = tokenizer.TokenToId("<|im_start|>")!.Value;
        int at = Array.IndexOf(e.Ids, start);
        Assert.True(at > 0);
        Assert.Equal((3, 15), e.Offsets[at]);
        Assert.Equal("<|im_end|>", text[e.Offsets[^1].Start..e.Offsets[^1].End]);
    }

    internal static string RandomText(Random rng)
    {
        var b = new StringBuilder();
        int n = rng.Next(0, 40);
        for (int i = 0; i < n; i++)
        {
            // One in five draws is a random BMP or supplementary code point outside the pools.
            if (rng.Next(5) == 0)
            {
                int cp = rng.Next(3) == 0 ? rng.Next(0x10000, 0x30000) : rng.Next(0x20, 0xD800);
                if (cp != 0x2581)
                {
                    b.Append(char.ConvertFromUtf32(cp));
                }
            }
            else
            {
                b.Append(Pool[rng.Next(Pool.Length)]);
            }
        }

        return b.ToString();
    }
}
