using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Text;

/// <summary>Small hand-written tokenizer.json files for options the real files do not exercise, and bad input.</summary>
public sealed class TokenizerEdgeCaseTests
{
    private const string Source = "/models/tiny/tokenizer.json";

    // Character vocabulary a..e plus merged tokens; ids in order of appearance.
    private static readonly string[] Vocab = ["<unk>", "a", "b", "c", "d", "e", " ", "ab", "bc", "abc", "cd", "<x>", "<x><y>", "<y>", "<0x41>", "<0xC3>", "<0xA9>"];

    private static string Json(string? model = null, string addedTokens = "[]", string extra = "") => $$"""
        {
          "version": "1.0",
          "added_tokens": {{addedTokens}},
          "normalizer": null,
          "pre_tokenizer": null,
          "post_processor": null,
          "decoder": {"type": "Fuse"},
          {{extra}}
          "model": {{model ?? Model()}}
        }
        """;

    private static string Model(string merges = """["a b", "b c", "ab c", "c d"]""", string options = "") =>
        $$"""{"type": "BPE", "vocab": {{VocabJson()}}, "merges": {{merges}} {{options}}}""";

    private static string VocabJson() => JsonSerializer.Serialize(Vocab.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i));

    private static int Id(string token) => Array.IndexOf(Vocab, token);

    private static int[] Ids(params string[] tokens) => tokens.Select(Id).ToArray();

    private static string Added(string content, int id, bool lstrip = false, bool rstrip = false, bool singleWord = false, bool special = true) =>
        string.Create(CultureInfo.InvariantCulture, $$"""{"id": {{id}}, "content": "{{content}}", "single_word": {{Lower(singleWord)}}, "lstrip": {{Lower(lstrip)}}, "rstrip": {{Lower(rstrip)}}, "normalized": false, "special": {{Lower(special)}}}""");

    private static string Lower(bool b) => b ? "true" : "false";

    [Fact]
    public void Merges_apply_by_rank()
    {
        var t = Tokenizer.FromJson(Json(), Source);
        Assert.Equal(Ids("abc"), t.Encode("abc"));               // a b → ab, then ab c → abc
        Assert.Equal(Ids("abc", "d"), t.Encode("abcd"));         // ab c (rank 2) before c d (rank 3)
        Assert.Equal(Ids("bc", "d"), t.Encode("bcd"));           // b c (rank 1) before c d (rank 3)
        Assert.Equal(Ids("a", "bc"), Tokenizer.FromJson(Json(Model("""["b c", "a b"]""")), Source).Encode("abc"));
        Assert.Equal("abcd", t.Decode(t.Encode("abcd")));
    }

    [Fact]
    public void Ignore_merges_takes_whole_words_from_the_vocab()
    {
        // Without ab c, "abc" ends as ab + c; with ignore_merges it is the vocab token abc.
        string merges = """["a b", "b c"]""";
        Assert.Equal(Ids("ab", "c"), Tokenizer.FromJson(Json(Model(merges)), Source).Encode("abc"));
        Assert.Equal(Ids("abc"), Tokenizer.FromJson(Json(Model(merges, ", \"ignore_merges\": true")), Source).Encode("abc"));
        Assert.Equal(Ids("ab", "d"), Tokenizer.FromJson(Json(Model(merges, ", \"ignore_merges\": true")), Source).Encode("abd"));
    }

    [Fact]
    public void Merges_may_be_pairs_of_strings()
    {
        var t = Tokenizer.FromJson(Json(Model("""[["a", "b"], ["b", "c"], ["ab", "c"]]""")), Source);
        Assert.Equal(Ids("abc"), t.Encode("abc"));
    }

    [Fact]
    public void Byte_fallback_and_fused_unknowns()
    {
        // 'A' is only reachable as <0x41>; 'é' (C3 A9) as two byte tokens; 'z' has no byte token either, so it is unk.
        var fallback = Tokenizer.FromJson(Json(Model(options: ", \"byte_fallback\": true, \"unk_token\": \"<unk>\"")), Source);
        Assert.Equal(Ids("a", "<0x41>", "<0xC3>", "<0xA9>", "<unk>"), fallback.Encode("aAéz"));
        var offsets = fallback.EncodeWithOffsets("aAéz").Offsets;
        Assert.Equal([(0, 1), (1, 2), (2, 3), (2, 3), (3, 4)], offsets);

        var fused = Tokenizer.FromJson(Json(Model(options: ", \"unk_token\": \"<unk>\", \"fuse_unk\": true")), Source);
        Assert.Equal(Ids("a", "<unk>", "b"), fused.Encode("azzzb"));
        var unfused = Tokenizer.FromJson(Json(Model(options: ", \"unk_token\": \"<unk>\"")), Source);
        Assert.Equal(Ids("a", "<unk>", "<unk>", "<unk>", "b"), unfused.Encode("azzzb"));
    }

    [Fact]
    public void Added_tokens_match_longest_first_before_the_model()
    {
        string added = $"[{Added("<x>", Id("<x>"))}, {Added("<x><y>", Id("<x><y>"))}, {Added("<y>", Id("<y>"))}]";
        var t = Tokenizer.FromJson(Json(addedTokens: added), Source);
        Assert.Equal(Ids("a", "<x><y>", "b", "<x>", "<y>"), t.Encode("a<x><y>b<x> <y>").Where(id => id != Id(" ")).ToArray());
        Assert.Equal(Ids("a", "<x><y>", "b", "<x>", " ", "<y>"), t.Encode("a<x><y>b<x> <y>"));
        Assert.Equal("ab", t.Decode(t.Encode("a<x>b"), skipSpecialTokens: true));
        Assert.Equal("a<x>b", t.Decode(t.Encode("a<x>b")));
    }

    [Fact]
    public void Added_token_lstrip_and_rstrip_swallow_the_whitespace_beside_it()
    {
        var plain = Tokenizer.FromJson(Json(addedTokens: $"[{Added("<x>", Id("<x>"))}]"), Source);
        Assert.Equal(Ids("a", " ", " ", "<x>", " ", "b"), plain.Encode("a  <x> b"));

        var both = Tokenizer.FromJson(Json(addedTokens: $"[{Added("<x>", Id("<x>"), lstrip: true, rstrip: true)}]"), Source);
        Assert.Equal(Ids("a", "<x>", "b"), both.Encode("a  <x> b"));
        Assert.Equal([(0, 1), (1, 7), (7, 8)], both.EncodeWithOffsets("a  <x> b").Offsets);

        var left = Tokenizer.FromJson(Json(addedTokens: $"[{Added("<x>", Id("<x>"), lstrip: true)}]"), Source);
        Assert.Equal(Ids("a", "<x>", " ", "b"), left.Encode("a  <x> b"));
    }

    [Fact]
    public void Single_word_added_tokens_need_word_boundaries()
    {
        var t = Tokenizer.FromJson(Json(addedTokens: $"[{Added("cd", Id("cd"), singleWord: true, special: false)}]", model: Model("[]")), Source);
        Assert.Equal(Ids("a", " ", "cd", " ", "b"), t.Encode("a cd b"));
        Assert.Equal(Ids("a", "c", "d"), t.Encode("acd"));
    }

    [Fact]
    public void Template_post_processor_and_config_override()
    {
        string post = """
            "post_processor": {"type": "TemplateProcessing",
              "single": [{"SpecialToken": {"id": "<x>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}, {"SpecialToken": {"id": "<y>", "type_id": 0}}],
              "pair": [], "special_tokens": {"<x>": {"id": "<x>", "ids": [11], "tokens": ["<x>"]}, "<y>": {"id": "<y>", "ids": [13], "tokens": ["<y>"]}}},
            """;
        string added = $"[{Added("<x>", 11)}, {Added("<y>", 13)}]";
        string json = Json(addedTokens: added, extra: post).Replace("\"post_processor\": null,", string.Empty, StringComparison.Ordinal);
        var t = Tokenizer.FromJson(json, Source);
        Assert.Equal([11, Id("ab"), 13], t.Encode("ab"));
        Assert.Equal([Id("ab")], t.Encode("ab", addSpecialTokens: false));
        Assert.Equal(11, t.BosTokenId);
        Assert.Equal(13, t.EosTokenId);
        Assert.Equal([(0, 0), (0, 2), (0, 0)], t.EncodeWithOffsets("ab").Offsets);

        var noBos = Tokenizer.FromJson(json, Source, """{"bos_token": "<x>", "eos_token": {"content": "<y>"}, "pad_token": "<y>", "add_bos_token": false}""");
        Assert.Equal([Id("ab"), 13], noBos.Encode("ab"));
        Assert.Equal(13, noBos.PadTokenId);
        var eos = Tokenizer.FromJson(json, Source, """{"bos_token": "<x>", "eos_token": "<y>", "add_bos_token": true, "add_eos_token": false}""");
        Assert.Equal([11, Id("ab")], eos.Encode("ab"));
        Assert.Equal([11, 13], eos.SpecialTokenIds);
    }

    [Fact]
    public void Metaspace_pre_tokenizer_and_decoder()
    {
        string[] vocab = ["▁", "H", "e", "y", "f", "r", "i", "n", "d", "!", "▁H", "▁He", "▁Hey", "▁f", "▁fr", "▁fri", "▁frie", "▁frien", "▁friend"];
        string vocabJson = JsonSerializer.Serialize(vocab.Select((t, i) => (t, i)).ToDictionary(p => p.t, p => p.i));
        string merges = """["▁ H", "▁H e", "▁He y", "▁ f", "▁f r", "▁fr i", "▁fri e", "▁frie n", "▁frien d"]""";
        string json = $$"""
            {"added_tokens": [], "normalizer": null,
             "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
             "decoder": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "always", "split": true},
             "model": {"type": "BPE", "vocab": {{vocabJson}}, "merges": {{merges}} } }
            """;
        var t = Tokenizer.FromJson(json, Source);
        int[] ids = t.Encode("Hey  friend!");
        Assert.Equal(new[] { "▁Hey", "▁", "▁friend", "!" }, ids.Select(t.IdToToken));
        Assert.Equal("Hey  friend!", t.Decode(ids));
    }

    [Theory]
    [InlineData("Removed", "a|b|c")]
    [InlineData("Isolated", "a|-|b|-|-|c")]
    [InlineData("MergedWithPrevious", "a-|b-|-|c")]
    [InlineData("MergedWithNext", "a|-b|-|-c")]
    [InlineData("Contiguous", "a|-|b|--|c")]
    public void Split_behaviors(string behavior, string expected)
    {
        string json = Json(extra: $$"""
            "pre_tokenizer": {"type": "Split", "pattern": {"String": "-"}, "behavior": "{{behavior}}", "invert": false},
            """).Replace("\"pre_tokenizer\": null,", string.Empty, StringComparison.Ordinal);
        var t = Tokenizer.FromJson(json, Source);
        Assert.Equal(expected, string.Join('|', t.PreTokenize("a-b--c")));
    }

    [Fact]
    public void Split_regex_sees_code_points_not_utf16_units()
    {
        // 𝔘 (U+1D518) is a letter and 𝟏..𝟒 (U+1D7CF..) are digits: Llama 3's \p{L}+ keeps "a𝔘b" whole and \p{N}{1,3} counts code points.
        var t = TokenizerTestFiles.Get(TokenizerTestFiles.Llama3);
        Assert.Equal(["a𝔘b"], t.PreTokenize("a𝔘b"));
        Assert.Equal(["𝟏𝟐𝟑", "𝟒"], t.PreTokenize("𝟏𝟐𝟑𝟒"));
        Assert.Equal(["Hello", " world", "123", "4", "!!", " ", " x"], t.PreTokenize("Hello world1234!!  x"));
    }

    [Fact]
    public void Category_stand_ins_have_their_category()
    {
        for (int c = 0; c < TokenizerRegex.CategoryStandIns.Length; c++)
        {
            if ((UnicodeCategory)c != UnicodeCategory.Surrogate)
            {
                Assert.Equal((UnicodeCategory)c, CharUnicodeInfo.GetUnicodeCategory(TokenizerRegex.CategoryStandIns[c]));
            }
        }
    }

    [Fact]
    public void Unsupported_model_types_name_the_file()
    {
        foreach (string type in new[] { "WordPiece", "Unigram", "WordLevel" })
        {
            var e = Assert.Throws<NotSupportedException>(() => Tokenizer.FromJson(Json($$"""{"type": "{{type}}", "vocab": {} }"""), Source));
            Assert.Contains(Source, e.Message, StringComparison.Ordinal);
            Assert.Contains(type, e.Message, StringComparison.Ordinal);
        }

        var n = Assert.Throws<NotSupportedException>(() => Tokenizer.FromJson(Json().Replace("\"normalizer\": null", "\"normalizer\": {\"type\": \"Precompiled\"}", StringComparison.Ordinal), Source));
        Assert.Contains("normalizer type 'Precompiled'", n.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Bad_files_name_the_file_and_field()
    {
        var missing = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson(Json($$"""{"type": "BPE", "vocab": {{VocabJson()}} }"""), Source));
        Assert.Contains($"{Source}: 'model.merges' is missing", missing.Message, StringComparison.Ordinal);

        var unknown = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson(Json(Model("""["a b", "a q"]""")), Source));
        Assert.Contains("'model.merges[1]' uses token 'q'", unknown.Message, StringComparison.Ordinal);

        var notInVocab = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson(Json(Model("""["d e"]""")), Source));
        Assert.Contains("'model.merges[0]' merges 'd' + 'e' into 'de', which is not in the vocab", notInVocab.Message, StringComparison.Ordinal);

        var badJson = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson("{\"model\": ", Source));
        Assert.Contains(Source, badJson.Message, StringComparison.Ordinal);

        var badConfig = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson(Json(), Source, """{"bos_token": "<s>"}"""));
        Assert.Contains("'bos_token' = '<s>' is not a token", badConfig.Message, StringComparison.Ordinal);

        var folder = Assert.Throws<FileNotFoundException>(() => Tokenizer.Load("/nonexistent/model"));
        Assert.Contains("/nonexistent/model/tokenizer.json", folder.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(2147483647)]
    [InlineData(-1)]
    [InlineData(16777216)]
    public void Token_ids_outside_the_id_range_are_errors_naming_the_field(long id)
    {
        string Vocab(long v) => JsonSerializer.Serialize(TokenizerEdgeCaseTests.Vocab.Select((t, i) => (t, t == "<y>" ? v : i)).ToDictionary(p => p.t, p => p.Item2));
        var inVocab = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson(Json($$"""{"type": "BPE", "vocab": {{Vocab(id)}}, "merges": []}"""), Source));
        Assert.Contains("'model.vocab' entry '<y>'", inVocab.Message, StringComparison.Ordinal);
        Assert.Contains($"[0, {(1 << 24) - 1}]", inVocab.Message, StringComparison.Ordinal);

        var added = Assert.Throws<InvalidDataException>(() => Tokenizer.FromJson(Json(addedTokens: $"[{Added("<z>", 0).Replace("\"id\": 0", $"\"id\": {id}", StringComparison.Ordinal)}]"), Source));
        Assert.Contains("'added_tokens[0].id'", added.Message, StringComparison.Ordinal);
        Assert.Contains(Source, added.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Decode_rejects_unknown_ids()
    {
        var t = Tokenizer.FromJson(Json(), Source);
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => t.Decode([1, 999]));
        Assert.Contains("token id 999", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => t.IdToToken(-1));
    }
}
