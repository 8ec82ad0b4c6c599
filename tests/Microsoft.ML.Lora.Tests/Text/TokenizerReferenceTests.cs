using System.Text;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>Exact ids and decoded text against transformers.js on real tokenizer.json files.</summary>
public sealed class TokenizerReferenceTests
{
    public static TheoryData<string> Models => [TokenizerTestFiles.Llama2, TokenizerTestFiles.Llama3, TokenizerTestFiles.Qwen3, TokenizerTestFiles.TinyStories, TokenizerTestFiles.Gemma3];

    [Theory]
    [MemberData(nameof(Models))]
    public void Ids_match_transformers_js_with_and_without_special_tokens(string name)
    {
        var tokenizer = TokenizerTestFiles.Get(name);
        var fixture = TokenizerTestFiles.Fixture(name);
        Assert.True(fixture.Cases.Length > 100, $"{name}: fixture has only {fixture.Cases.Length} cases");
        var failures = new StringBuilder();
        int failed = 0;
        foreach (var c in fixture.Cases)
        {
            Check(c.Text, "ids", c.Ids, tokenizer.Encode(c.Text));
            Check(c.Text, "ids_no_special", c.IdsNoSpecial, tokenizer.Encode(c.Text, addSpecialTokens: false));
            Check(c.Text, "EncodeWithOffsets ids", c.Ids, tokenizer.EncodeWithOffsets(c.Text).Ids);
        }

        Assert.True(failed == 0, $"{name}: {failed} mismatches vs {fixture.Reference}:\n{failures}");

        void Check(string text, string what, int[] expected, int[] actual)
        {
            if (!expected.AsSpan().SequenceEqual(actual))
            {
                if (++failed <= 8)
                {
                    failures.AppendLine($"  {Show(text)} {what}: expected [{string.Join(',', expected)}] got [{string.Join(',', actual)}]");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Models))]
    public void Decode_matches_transformers_js(string name)
    {
        var tokenizer = TokenizerTestFiles.Get(name);
        var fixture = TokenizerTestFiles.Fixture(name);
        var failures = new StringBuilder();
        int failed = 0;
        foreach (var c in fixture.Cases)
        {
            Check(c.Text, "decoded", c.Decoded, tokenizer.Decode(c.IdsNoSpecial));
            Check(c.Text, "decoded_with_special", c.DecodedWithSpecial, tokenizer.Decode(c.Ids));
            Check(c.Text, "decoded_skip_special", c.DecodedSkipSpecial, tokenizer.Decode(c.Ids, skipSpecialTokens: true));
        }

        Assert.True(failed == 0, $"{name}: {failed} mismatches vs {fixture.Reference}:\n{failures}");

        void Check(string text, string what, string expected, string actual)
        {
            if (!string.Equals(expected, actual, StringComparison.Ordinal) && ++failed <= 8)
            {
                failures.AppendLine($"  {Show(text)} {what}: expected {Show(expected)} got {Show(actual)}");
            }
        }
    }

    internal static string Show(string s)
    {
        var b = new StringBuilder("\"");
        foreach (char c in s.Length > 60 ? s[..60] : s)
        {
            b.Append(c is < ' ' or > '~' ? $"\\u{(int)c:X4}" : c.ToString());
        }

        return b.Append(s.Length > 60 ? "…\"" : "\"").ToString();
    }
}
