using Microsoft.ML.Lora.Training;
using static Microsoft.ML.Lora.Tests.Training.DatasetTestTokenizer;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>CSV/TSV with a header: RFC 4180 quoting, line numbers across quoted line breaks, column errors.</summary>
public sealed class DatasetCsvTests : DatasetTestFiles
{
    private const int X = -100;

    [Fact]
    public void QuotedFieldsHoldDelimitersQuotesAndLineBreaks()
    {
        string path = WriteRaw(
            "d.csv",
            "id,text,label\r\n" +
            "1,plain,x\r\n" +
            "2,\"a, b\",y\r\n" +
            "3,\"say \"\"hi\"\"\",z\r\n" +
            "4,\"two\r\nlines\",w\r\n" +
            "\r\n" +
            "5,\"\"\"\",v\r\n");
        var data = Load(path);

        Assert.Equal(DatasetFormat.Csv, data.Report.Format);
        Assert.Equal([2, 3, 4, 5, 8], data.Select(r => r.Line));
        Assert.Equal([Bos, .. Bytes("plain"), Eos], data[0].InputIds);
        Assert.Equal([Bos, .. Bytes("a, b"), Eos], data[1].InputIds);
        Assert.Equal([Bos, .. Bytes("say \"hi\""), Eos], data[2].InputIds);
        Assert.Equal([Bos, .. Bytes("two\nlines"), Eos], data[3].InputIds);
        Assert.Equal([Bos, '"', Eos], data[4].InputIds);
        Assert.All(data, r => Assert.Null(r.Labels));
    }

    [Fact]
    public void ACompletionColumnMakesPromptCompletionRows()
    {
        string path = Write("d.csv", "text,label", "Q,A", "\"R\",\"\"\"B\"");
        var data = Load(path, new() { CompletionColumn = "label" });

        Assert.Equal([Bos, 'Q', 'A', Eos], data[0].InputIds);
        Assert.Equal([X, X, 'A', Eos], data[0].Labels!);
        Assert.Equal([Bos, 'R', '"', 'B', Eos], data[1].InputIds);
        Assert.Equal([X, X, '"', 'B', Eos], data[1].Labels!);
    }

    [Fact]
    public void TsvUsesTabsAndTheConfiguredColumn()
    {
        string path = Write("d.tsv", "label\tsentence", "pos\tgood, fine", "neg\t\"a\tb\"");
        var data = Load(path, new() { TextColumn = "sentence" });
        Assert.Equal(DatasetFormat.Tsv, data.Report.Format);
        Assert.Equal([Bos, .. Bytes("good, fine"), Eos], data[0].InputIds);
        Assert.Equal([Bos, 'a', '\t', 'b', Eos], data[1].InputIds);
    }

    [Theory]
    [InlineData("1,x", "has 2 fields but the header has 3 (id, text, label)")]
    [InlineData("1,x,y,z", "has 4 fields but the header has 3")]
    [InlineData("1,a\"b,y", "field 2 has a quote inside an unquoted value (a\"b)")]
    [InlineData("1,\"ab\"c,y", "field 2: 'c' after a closing quote")]
    [InlineData("1,,y", "column \"text\" is empty")]
    public void BadRecordsNameFileAndLine(string record, string reason)
    {
        string path = Write("d.csv", "id,text,label", "0,fine,x", "", record, "9,fine,x");
        string message = BadRow(path);
        Assert.StartsWith($"{path} line 4: ", message);
        Assert.Contains(reason, message);
    }

    [Fact]
    public void AnUnclosedQuoteRunsToTheEndOfTheFile()
    {
        string path = Write("d.csv", "id,text", "1,ok", "2,\"never closed", "3,more");
        string message = BadRow(path);
        Assert.StartsWith($"{path} line 3: a quoted field is not closed before the end of the file", message);
    }

    [Fact]
    public void SkippingResumesAfterTheBadRecord()
    {
        string path = Write("d.csv", "id,text", "1,a", "2,b\"c", "3,\"x\ny\",extra", "4,d");
        var data = Load(path, new() { SkipBadRows = true });
        Assert.Equal([2, 6], data.Select(r => r.Line));
        Assert.Equal(2, data.Report.SkippedRows);
        Assert.StartsWith($"{path} line 4: has 3 fields", data.Report.SkipReasons[1]);
    }

    [Fact]
    public void MissingOrDuplicateColumnsAreFileErrors()
    {
        string path = Write("d.csv", "id,body", "1,a");
        string message = Assert.Throws<InvalidDataException>(() => Load(path, new() { SkipBadRows = true })).Message;
        Assert.Equal($"{path} line 1: no column \"text\" in the header (\"id\", \"body\"); set TextDatasetOptions.TextColumn (CLI: --text-column)", message);

        Assert.Contains("no column \"label\"", BadRow(Write("e.csv", "text", "a"), new() { CompletionColumn = "label" }));
        Assert.Contains("names column \"text\" twice", BadRow(Write("f.csv", "text,text", "a,b")));
    }
}
