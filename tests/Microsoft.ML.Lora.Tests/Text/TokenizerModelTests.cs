using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>Properties of the real files, the heap merger against its naive twin, and NFC/NFD against Python.</summary>
public sealed class TokenizerModelTests
{
    [Fact]
    public void Real_files_expose_vocab_size_and_special_ids()
    {
        var llama2 = TokenizerTestFiles.Get(TokenizerTestFiles.Llama2);
        Assert.Equal(32000, llama2.VocabSize);
        Assert.Equal((1, 2, (int?)null), (llama2.BosTokenId, llama2.EosTokenId, llama2.PadTokenId));
        Assert.Equal([0, 1, 2], llama2.SpecialTokenIds);
        Assert.Equal("<0x0A>", llama2.IdToToken(llama2.TokenToId("<0x0A>")!.Value));

        var llama3 = TokenizerTestFiles.Get(TokenizerTestFiles.Llama3);
        Assert.Equal(128256, llama3.VocabSize);
        Assert.Equal((128000, 128001), (llama3.BosTokenId, llama3.EosTokenId));
        Assert.Equal(256, llama3.SpecialTokenIds.Count);
        Assert.Equal("Ġworld", llama3.IdToToken(1917));

        var qwen3 = TokenizerTestFiles.Get(TokenizerTestFiles.Qwen3);
        Assert.Equal(151669, qwen3.VocabSize);
        Assert.Equal(((int?)null, 151645, 151643), (qwen3.BosTokenId, qwen3.EosTokenId, qwen3.PadTokenId));
        Assert.Equal(151667, qwen3.TokenToId("<think>"));
        Assert.DoesNotContain(151667, qwen3.SpecialTokenIds);
    }

    [Theory]
    [InlineData(TokenizerTestFiles.Llama2)]
    [InlineData(TokenizerTestFiles.Llama3)]
    [InlineData(TokenizerTestFiles.Qwen3)]
    public void Heap_merger_matches_the_naive_reference(string name)
    {
        var tokenizer = TokenizerTestFiles.Get(name);
        var rng = new Random(7);
        var words = TokenizerTestFiles.Fixture(name).Cases
            .SelectMany(c => tokenizer.PreTokenize(c.Text))
            .Concat(Enumerable.Range(0, 300).SelectMany(_ => tokenizer.PreTokenize(TokenizerPropertyTests.RandomText(rng))))
            .ToList();
        // Long words: the heap's reason to exist (Llama 2 has no pre-tokenizer, a word is a whole text).
        string all = string.Concat(words);
        words.Add(all[..Math.Min(all.Length, 1200)]);
        Assert.True(words.Count > 400, $"{words.Count} words");
        foreach (string word in words)
        {
            Assert.Equal(tokenizer.Model.EncodeReference(word), tokenizer.Model.EncodeUncached(word).Ids);
        }
    }

    [Fact]
    public void Cutting_llama2_words_before_metaspace_changes_no_token()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.Llama2);
        Assert.True(tokenizer.Model.SplitsAtMetaspace);
        Assert.False(TokenizerTestFiles.Get(TokenizerTestFiles.Llama3).Model.SplitsAtMetaspace);
        var rng = new Random(5);
        for (int k = 0; k < 40; k++)
        {
            string text = string.Concat(Enumerable.Range(0, 20).Select(_ => TokenizerPropertyTests.RandomText(rng)));
            string word = Assert.Single(tokenizer.PreTokenize(text));
            Assert.True(word.Length > 64);
            Assert.Equal(tokenizer.Model.EncodeUncached(word).Ids, tokenizer.Encode(text, addSpecialTokens: false));
        }
    }

    [Fact]
    public void Nfc_and_nfd_match_python_unicodedata()
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(TokenizerTestFiles.RepoRoot, "tests", "fixtures", "tokenizer", "normalization.json")));
        int count = 0, changed = 0;
        foreach (var c in doc.RootElement.GetProperty("cases").EnumerateArray())
        {
            string text = c.GetProperty("text").GetString()!;
            string nfc = c.GetProperty("nfc").GetString()!;
            Assert.Equal(nfc, NormalizerUnicode.Normalize(text, compose: true));
            Assert.Equal(c.GetProperty("nfd").GetString(), NormalizerUnicode.Normalize(text, compose: false));
            Assert.Equal(string.Equals(nfc, text, StringComparison.Ordinal), NormalizerUnicode.IsNormalized(text, compose: true) || string.Equals(nfc, text, StringComparison.Ordinal));
            count++;
            changed += string.Equals(nfc, text, StringComparison.Ordinal) ? 0 : 1;
        }

        Assert.True(count == 400 && changed > 50, $"{count} cases, {changed} changed by NFC");
    }

    [Fact]
    public void Concurrent_encoding_gives_the_same_ids()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.Llama3);
        string[] texts = TokenizerTestFiles.Fixture(TokenizerTestFiles.Llama3).Cases.Select(c => c.Text).ToArray();
        int[][] expected = texts.Select(t => tokenizer.Encode(t)).ToArray();
        Parallel.For(0, 8, _ =>
        {
            for (int i = 0; i < texts.Length; i++)
            {
                Assert.Equal(expected[i], tokenizer.Encode(texts[i]));
            }
        });
    }
}
