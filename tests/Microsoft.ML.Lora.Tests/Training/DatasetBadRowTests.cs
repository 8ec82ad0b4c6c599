using System.Text;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Every kind of bad row names the file and line; SkipBadRows skips and counts instead.</summary>
public sealed class DatasetBadRowTests : DatasetTestFiles
{
    private static readonly TextDatasetOptions Chat = new() { ChatTemplate = ChatTemplate.FromName("chatml") };

    public static TheoryData<string, string> BadTextRows => new()
    {
        { """{"text": "ok"} oops""", "not valid JSON" },
        { """{"text": "ok""", "not valid JSON" },
        { """["text"]""", "expected a JSON object, got Array" },
        { """{"txt": "a"}""", "missing \"text\"" },
        { """{"text": 5}""", "\"text\" must be a string, got Number 5" },
        { """{"text": null}""", "\"text\" must be a string, got Null null" },
        { """{"text": "  "}""", "\"text\" is empty" },
        { """{"text": "a", "text": "b"}""", "not valid JSON" },
    };

    public static TheoryData<string, string> BadChatRows => new()
    {
        { """{"messages": []}""", "\"messages\" must be a non-empty array" },
        { """{"messages": "hi"}""", "\"messages\" must be a non-empty array of {\"role\", \"content\"} objects, got String \"hi\"" },
        { """{"messages": [5]}""", "\"messages\"[0] must be an object, got Number 5" },
        { """{"messages": [{"role": "user"}]}""", "\"messages\"[0]: missing \"content\"" },
        { """{"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "b"}]}""", "\"messages\"[1]: role \"tool\" is not one of system, user, assistant" },
        { """{"messages": [{"role": "user", "content": ["a"]}]}""", "\"messages\"[0]: \"content\" must be a string, got Array" },
        { """{"messages": [{"role": "user", "content": "only a question"}]}""", "nothing to train on" },
    };

    [Theory]
    [MemberData(nameof(BadTextRows))]
    public void BadTextRowNamesFileAndLine(string row, string reason)
    {
        string path = Write("t.jsonl", """{"text": "fine"}""", "", row, """{"text": "fine"}""");
        string message = BadRow(path);
        Assert.StartsWith($"{path} line 3: ", message);
        Assert.Contains(reason, message);
    }

    [Theory]
    [MemberData(nameof(BadChatRows))]
    public void BadChatRowNamesFileAndLine(string row, string reason)
    {
        string path = Write("c.jsonl", """{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}""", row);
        string message = BadRow(path, Chat);
        Assert.StartsWith($"{path} line 2: ", message);
        Assert.Contains(reason, message);
    }

    [Fact]
    public void RoleOrderErrorsOfTheTemplateAreBadRows()
    {
        string path = Write("c.jsonl", """{"messages": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "b"}]}""");
        string message = BadRow(path, new() { ChatTemplate = ChatTemplate.FromName("llama2") });
        Assert.StartsWith($"{path} line 1: llama2 chat template: message 0 is assistant; expected user", message);
    }

    [Fact]
    public void BadPromptCompletionAndTokenizedRows()
    {
        Assert.Contains("line 2: \"completion\" is empty", BadRow(Write("a.jsonl", """{"prompt": "p", "completion": "c"}""", """{"prompt": "p", "completion": ""}""")));
        Assert.Contains("line 2: \"prompt\" must be a string, got Number 1", BadRow(Write("b.jsonl", """{"prompt": "p", "completion": "c"}""", """{"prompt": 1, "completion": "c"}""")));

        string tok = Write("t.jsonl", """{"input_ids": [1, 2]}""", """{"input_ids": [1, 2], "labels": [2]}""");
        Assert.StartsWith($"{tok} line 2: \"labels\" has 1 entries but \"input_ids\" has 2", BadRow(tok));
        string vocab = Write("v.jsonl", """{"input_ids": [1, 300]}""");
        Assert.StartsWith($"{vocab} line 1: \"input_ids\"[1] = 300 is outside the vocabulary: expected [0, 265)", Assert.Throws<InvalidDataException>(() => TextDataset.Load(vocab, null, new() { VocabSize = 265 })).Message);
        string single = Write("s.jsonl", """{"input_ids": [1]}""");
        Assert.StartsWith($"{single} line 1: nothing to train on: 1 tokens", BadRow(single));
        string masked = Write("m.jsonl", """{"input_ids": [1, 2], "labels": [1, -100]}""");
        Assert.StartsWith($"{masked} line 1: nothing to train on", BadRow(masked));
    }

    [Fact]
    public void InvalidUtf8IsReportedAtItsLine()
    {
        byte[] bytes = [.. "{\"text\": \"a\"}\n{\"text\": \"b\"}\n{\"text\": \""u8, 0xFF, 0xFE, .. "\"}\n"u8];
        string path = WriteBytes("u.jsonl", bytes);
        Assert.StartsWith($"{path} line 3: not valid UTF-8", BadRow(path));

        var skipped = Load(path, new() { SkipBadRows = true });
        Assert.Equal(2, skipped.Count);
        Assert.Equal(1, skipped.Report.SkippedRows);
    }

    [Fact]
    public void SkipBadRowsSkipsCountsAndKeepsTheFirstReasons()
    {
        string path = Write(
            "t.jsonl",
            """{"text": "a"}""",
            "not json",
            """{"text": 1}""",
            """{"text": "b"}""",
            """{"text": ""}""",
            """{"text": "c"}""");
        var data = Load(path, new() { SkipBadRows = true, MaxReportedBadRows = 2 });

        Assert.Equal([1, 4, 6], data.Select(r => r.Line));
        Assert.Equal(3, data.Report.Rows);
        Assert.Equal(3, data.Report.SkippedRows);
        Assert.Equal(2, data.Report.SkipReasons.Count);
        Assert.StartsWith($"{path} line 2: not valid JSON", data.Report.SkipReasons[0]);
        Assert.Equal($"{path} line 3: \"text\" must be a string, got Number 1", data.Report.SkipReasons[1]);
        Assert.Contains("3 bad rows skipped", data.Report.ToString());
    }

    [Fact]
    public void WithSkipBadRowsTheKindIsDetectedFromTheFirstGoodRow()
    {
        string path = Write("t.jsonl", "garbage", """{"unknown": 1}""", """{"prompt": "p", "completion": "c"}""");
        var data = Load(path, new() { SkipBadRows = true });
        Assert.Equal(DatasetFormat.PromptCompletion, data.Report.Format);
        Assert.Equal(2, data.Report.SkippedRows);
        Assert.Contains("cannot tell the row format from its keys (\"unknown\")", data.Report.SkipReasons[1]);
    }

    [Fact]
    public void NoRowsIsAnErrorEvenWhenSkipping()
    {
        string empty = Write("e.jsonl", "", "  ");
        Assert.Equal($"{empty}: no rows (the file is empty)", BadRow(empty));

        string bad = Write("b.jsonl", "x", "y");
        string message = Assert.Throws<InvalidDataException>(() => Load(bad, new() { SkipBadRows = true })).Message;
        Assert.StartsWith($"{bad}: no rows (all 2 rows are bad; first: {bad} line 1: not valid JSON", message);
    }

    [Fact]
    public void FileLevelProblemsThrowEvenWhenSkipping()
    {
        var skip = new TextDatasetOptions { SkipBadRows = true };
        string chat = Write("c.jsonl", """{"messages": [{"role": "user", "content": "a"}]}""");
        string message = Assert.Throws<InvalidDataException>(() => Load(chat, skip)).Message;
        Assert.Equal($"{chat} line 1: rows hold \"messages\" but no chat template was given; set --chat-template to one of chatml, qwen3, llama3, llama2, mistral, zephyr, gemma, phi3 (or load the model's tokenizer_config.json)", message);

        string text = Write("t.jsonl", """{"text": "a"}""");
        Assert.Contains("Text rows need a tokenizer", Assert.Throws<InvalidDataException>(() => TextDataset.Load(text, null, skip)).Message);
        Assert.Contains("AppendEos is set but the tokenizer has no EOS token", Assert.Throws<InvalidDataException>(() => TextDataset.Load(text, new DatasetTestTokenizer(hasEos: false), skip)).Message);
        Assert.Equal([DatasetTestTokenizer.Bos, 'a'], TextDataset.Load(text, new DatasetTestTokenizer(hasEos: false), new() { AppendEos = false })[0].InputIds);

        Assert.Throws<FileNotFoundException>(() => TextDataset.Load(Path.Combine(Path.GetDirectoryName(text)!, "missing.jsonl"), Tokenizer));
    }

    [Fact]
    public void AnExplicitCsvFormatOnJsonReadsItAsCsv()
    {
        // A JSONL file read as CSV: the header is the first object, split at its commas.
        string path = WriteRaw("x.jsonl", Encoding.UTF8.GetString("{\"a\": 1, \"b\": 2}\n"u8));
        string message = BadRow(path, new() { Format = DatasetFormat.Csv });
        Assert.Contains("line 1: the header row is unreadable", message);
    }
}
