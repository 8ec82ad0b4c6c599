using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;
using static Microsoft.ML.Lora.Tests.Training.DatasetTestTokenizer;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Each JSONL kind parsed and tokenized to exact ids and labels with the byte-level test tokenizer.</summary>
public sealed class DatasetTests : DatasetTestFiles
{
    private const int X = -100;

    [Fact]
    public void TextRowsGetBosFromTheTokenizerAndEosAppendedAndTrainOnEveryToken()
    {
        string path = Write("t.jsonl", """{"text": "Hi"}""", "", """{"text": "é", "other": 1}""");
        var data = Load(path);

        Assert.Equal(DatasetFormat.Text, data.Report.Format);
        Assert.Equal(2, data.Count);
        Assert.Equal([Bos, 'H', 'i', Eos], data[0].InputIds);
        Assert.Null(data[0].Labels);
        Assert.Equal(1, data[0].Line);
        Assert.Equal([Bos, 0xC3, 0xA9, Eos], data[1].InputIds);
        Assert.Equal(3, data[1].Line);
        Assert.Equal(path, data.Source);
        Assert.Equal(2, data.Report.Rows);
    }

    [Fact]
    public void EosIsNotDoubledAndCanBeTurnedOff()
    {
        string path = Write("t.jsonl", """{"text": "Hi</s>"}""");
        Assert.Equal([Bos, 'H', 'i', Eos], Load(path)[0].InputIds);
        Assert.Equal([Bos, 'H', 'i', Eos], Load(path, new() { AppendEos = false })[0].InputIds);
        Assert.Equal([Bos, 'H', 'i'], Load(Write("u.jsonl", """{"text": "Hi"}"""), new() { AppendEos = false })[0].InputIds);
    }

    [Fact]
    public void PromptCompletionMasksThePromptByDefault()
    {
        string path = Write("pc.jsonl", """{"prompt": "Q:", "completion": " A"}""");
        var row = Load(path).Single();

        Assert.Equal([Bos, 'Q', ':', ' ', 'A', Eos], row.InputIds);
        Assert.Equal([X, X, X, ' ', 'A', Eos], row.Labels!);
    }

    [Fact]
    public void PromptCompletionWithTrainOnPromptTrainsOnEverything()
    {
        string path = Write("pc.jsonl", """{"prompt": "Q:", "completion": " A"}""");
        var data = Load(path, new() { TrainOnPrompt = true });
        Assert.Equal([Bos, 'Q', ':', ' ', 'A', Eos], data[0].InputIds);
        Assert.Null(data[0].Labels);
    }

    [Fact]
    public void AnEmptyPromptIsAllowed()
    {
        var row = Load(Write("pc.jsonl", """{"prompt": "", "completion": "A"}""")).Single();
        Assert.Equal([Bos, 'A', Eos], row.InputIds);
        Assert.Equal([X, 'A', Eos], row.Labels!);
    }

    [Fact]
    public void ChatMlMessagesTrainOnAssistantContentAndItsEndMarkerOnly()
    {
        string path = Write("chat.jsonl", """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}""");
        var data = Load(path, new() { ChatTemplate = ChatTemplate.FromName("chatml") });
        var row = data.Single();

        // <|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n | Yo<|im_end|> | \n
        int[] prompt = [ImStart, 'u', 's', 'e', 'r', '\n', 'H', 'i', ImEnd, '\n', ImStart, 'a', 's', 's', 'i', 's', 't', 'a', 'n', 't', '\n'];
        Assert.Equal([.. prompt, 'Y', 'o', ImEnd, '\n'], row.InputIds);
        Assert.Equal([.. Enumerable.Repeat(X, prompt.Length), 'Y', 'o', ImEnd, X], row.Labels!);
        Assert.Equal(DatasetFormat.Messages, data.Report.Format);
    }

    [Fact]
    public void Llama3MessagesUseTheTemplatesBosAndNoTokenizerBos()
    {
        string path = Write("chat.jsonl", """{"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}, {"role": "user", "content": "V"}, {"role": "assistant", "content": "B"}]}""");
        var row = Load(path, new() { ChatTemplate = ChatTemplate.FromName("llama3") }).Single();

        int[] Header(string role) => [StartHeader, .. Bytes(role), EndHeader, '\n', '\n'];
        int[] expected =
        [
            BeginOfText, .. Header("system"), 'S', EotId, .. Header("user"), 'U', EotId, .. Header("assistant"), 'A', EotId,
            .. Header("user"), 'V', EotId, .. Header("assistant"), 'B', EotId,
        ];
        Assert.Equal(expected, row.InputIds);
        int[] labels = [.. row.Labels!];
        var trained = Enumerable.Range(0, labels.Length).Where(i => labels[i] != X).ToArray();
        Assert.Equal(['A', EotId, 'B', EotId], trained.Select(i => labels[i]));
        Assert.Equal(trained.Select(i => expected[i]), trained.Select(i => labels[i]));
        Assert.Equal(expected.Length - 1, trained[^1]);
    }

    [Fact]
    public void MessagesWithTrainOnPromptHaveNoMask()
    {
        string path = Write("chat.jsonl", """{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}]}""");
        var row = Load(path, new() { ChatTemplate = ChatTemplate.FromName("zephyr"), TrainOnPrompt = true }).Single();
        Assert.Null(row.Labels);
        Assert.Equal([.. Bytes("<|user|>\nHi"), Eos, '\n', .. Bytes("<|assistant|>\nYo"), Eos, '\n'], row.InputIds);
    }

    [Fact]
    public void TokenizedRowsNeedNoTokenizer()
    {
        string path = Write("tok.jsonl", """{"input_ids": [5, 6, 7], "labels": [-100, 6, 7]}""", """{"input_ids": [8, 9]}""");
        var data = TextDataset.Load(path, tokenizer: null);

        Assert.Equal(DatasetFormat.Tokenized, data.Report.Format);
        Assert.Equal([5, 6, 7], data[0].InputIds);
        Assert.Equal([X, 6, 7], data[0].Labels!);
        Assert.Equal([8, 9], data[1].InputIds);
        Assert.Null(data[1].Labels);
        Assert.Equal(2, data[1].Line);
    }

    [Fact]
    public void AnAttentionMaskDropsPaddingAtEitherEndAndRefusesHoles()
    {
        string path = Write("mask.jsonl", """{"input_ids": [0, 5, 6, 7, 0], "labels": [-100, -100, 6, 7, -100], "attention_mask": [0, 1, 1, 1, 0]}""", """{"input_ids": [8, 9], "attention_mask": [1, 1]}""");
        var data = TextDataset.Load(path, tokenizer: null);
        Assert.Equal([5, 6, 7], data[0].InputIds);
        Assert.Equal([X, 6, 7], data[0].Labels!);
        Assert.Equal([8, 9], data[1].InputIds);

        Assert.Contains("\"attention_mask\"[1] is 0 between attended tokens", BadRow(Write("hole.jsonl", """{"input_ids": [5, 6, 7], "attention_mask": [1, 0, 1]}""")), StringComparison.Ordinal);
        Assert.Contains("\"attention_mask\"[0] is 2147483648", BadRow(Write("big.jsonl", """{"input_ids": [5, 6], "attention_mask": [2147483648, 1]}""")), StringComparison.Ordinal);
        Assert.Contains("\"attention_mask\" has 1 entries but \"input_ids\" has 2", BadRow(Write("short.jsonl", """{"input_ids": [5, 6], "attention_mask": [1]}""")), StringComparison.Ordinal);
        Assert.Contains("all 0", BadRow(Write("none.jsonl", """{"input_ids": [5, 6], "attention_mask": [0, 0]}""")), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("""{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "text": "x"}""", DatasetFormat.Messages)]
    [InlineData("""{"input_ids": [1, 2], "text": "x"}""", DatasetFormat.Tokenized)]
    [InlineData("""{"prompt": "a", "completion": "b", "text": "x"}""", DatasetFormat.PromptCompletion)]
    [InlineData("""{"prompt": "a", "text": "x"}""", DatasetFormat.Text)]
    public void AutoDetectsTheKindFromTheFirstRowsKeys(string row, DatasetFormat expected)
    {
        var data = Load(Write("a.jsonl", row), new() { ChatTemplate = ChatTemplate.FromName("chatml") });
        Assert.Equal(expected, data.Report.Format);
    }

    [Fact]
    public void TheFirstRowFixesTheKindForTheRest()
    {
        string path = Write("a.jsonl", """{"text": "a"}""", """{"prompt": "p", "completion": "c"}""");
        Assert.Equal($"{path} line 2: missing \"text\" (set SkipBadRows / --skip-bad-rows to skip such rows)", BadRow(path));
    }

    [Fact]
    public void AnExplicitFormatAndFieldNamesOverrideDetection()
    {
        string path = Write("a.jsonl", """{"prompt": "p", "completion": "c", "body": "Hi"}""");
        var data = Load(path, new() { Format = DatasetFormat.Text, TextField = "body" });
        Assert.Equal(DatasetFormat.Text, data.Report.Format);
        Assert.Equal([Bos, 'H', 'i', Eos], data[0].InputIds);

        var renamed = Load(Write("b.jsonl", """{"q": "Q", "a": "A"}"""), new() { Format = DatasetFormat.PromptCompletion, PromptField = "q", CompletionField = "a" });
        Assert.Equal([X, X, 'A', Eos], renamed[0].Labels!);
    }

    [Fact]
    public void ByteOrderMarkAndCrLfAreAccepted()
    {
        string path = WriteRaw("bom.jsonl", "\uFEFF{\"text\": \"a\"}\r\n{\"text\": \"b\"}\r\n");
        var data = Load(path);
        Assert.Equal([Bos, 'a', Eos], data[0].InputIds);
        Assert.Equal([Bos, 'b', Eos], data[1].InputIds);
    }

    [Fact]
    public void LoadReportsProgressAndHonoursCancellation()
    {
        string path = Write("t.jsonl", """{"text": "a"}""", """{"text": "b"}""");
        var seen = new List<int>();
        TextDataset.Load(path, Tokenizer, null, new SyncProgress(seen.Add));
        Assert.Equal([2], seen);

        using var cts = new CancellationTokenSource();
        cts.Cancel();
        Assert.Throws<OperationCanceledException>(() => TextDataset.Load(path, Tokenizer, null, null, cts.Token));
    }

    [Fact]
    public void OptionsAreValidated()
    {
        Assert.Contains("TextDatasetOptions.TextField is empty", Assert.Throws<ArgumentException>(() => new TextDatasetOptions { TextField = "" }.Validate()).Message);
        Assert.Contains("CompletionColumn and TextColumn are both 'text'", Assert.Throws<ArgumentException>(() => new TextDatasetOptions { CompletionColumn = "text" }.Validate()).Message);
        Assert.Contains("MaxReportedBadRows = -1", Assert.Throws<ArgumentException>(() => new TextDatasetOptions { MaxReportedBadRows = -1 }.Validate()).Message);
        Assert.Throws<ArgumentException>(() => TextDataset.Open(Write("x.jsonl", "{}"), Tokenizer, new TextDatasetOptions { VocabSize = 0 }));
    }

    private sealed class SyncProgress(Action<int> report) : IProgress<int>
    {
        public void Report(int value) => report(value);
    }
}
