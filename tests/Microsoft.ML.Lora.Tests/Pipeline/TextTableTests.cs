using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>The pipeline's in-memory table: typed columns, clear errors, immutability.</summary>
public sealed class TextTableTests
{
    [Fact]
    public void FromRowsMakesOneColumnPerPropertyInOrder()
    {
        var table = TextTable.FromRows([new Row("a", 1, 0.5f), new Row("b", 0, 2f)]);

        Assert.Equal(2, table.RowCount);
        Assert.Equal([new TextColumn("Text", typeof(string)), new TextColumn("Label", typeof(int)), new TextColumn("Weight", typeof(float))], table.Schema);
        Assert.Equal(["a", "b"], table.GetColumn<string>("Text"));
        Assert.Equal([1, 0], table.GetColumn<int>("Label"));
        Assert.Equal([0.5f, 2f], table.GetColumn<float>("Weight"));
    }

    [Fact]
    public void FromColumnsInfersTypesAndStoresConversationsAsReadOnlyLists()
    {
        ChatMessage[] chat = [new(ChatRole.User, "hi"), new(ChatRole.Assistant, "hello")];
        var table = TextTable.FromColumns(("Text", new[] { "x" }), ("Score", new List<float[]> { new[] { 0.25f, 0.75f } }), ("Messages", new[] { chat }));

        Assert.Equal(typeof(IReadOnlyList<ChatMessage>), table.GetColumnType("Messages"));
        Assert.Equal("hello", table.GetColumn<IReadOnlyList<ChatMessage>>("Messages")[0][1].Content);
        Assert.Equal([0.25f, 0.75f], table.GetColumn<float[]>("Score")[0]);
    }

    [Fact]
    public void WithColumnAddsOrReplacesAndLeavesTheOriginalUnchanged()
    {
        var table = TextTable.FromColumns(("Text", new[] { "x", "y" }));
        var added = table.WithColumn("Label", new[] { 3, 4 });
        var replaced = added.WithColumn("Label", new[] { "p", "q" });

        Assert.Single(table.Schema);
        Assert.Equal([3, 4], added.GetColumn<int>("Label"));
        Assert.Equal(typeof(string), replaced.GetColumnType("Label"));
        Assert.Equal(2, replaced.Schema.Count);
        Assert.Equal([3, 4], added.GetColumn<int>("Label"));
    }

    [Fact]
    public void ValuesAreCopiedSoTheCallerCannotChangeTheTable()
    {
        string[] texts = ["x", "y"];
        var table = TextTable.FromColumns(("Text", texts));
        texts[0] = "changed";
        Assert.Equal("x", table.GetColumn<string>("Text")[0]);
    }

    [Fact]
    public void ErrorsNameTheColumnAndTheTypes()
    {
        var table = TextTable.FromColumns(("Text", new[] { "x" }), ("Label", new[] { 1 }));

        var missing = Assert.Throws<ArgumentException>(() => table.GetColumn<string>("Txt"));
        Assert.Contains("'Txt'", missing.Message);
        Assert.Contains("'Text' (String)", missing.Message);

        var wrongType = Assert.Throws<ArgumentException>(() => table.GetColumn<string>("Label"));
        Assert.Contains("column 'Label' holds Int32, not String", wrongType.Message);

        var length = Assert.Throws<ArgumentException>(() => table.WithColumn("Extra", new[] { 1, 2 }));
        Assert.Contains("column 'Extra' has 2 values; the table has 1 rows", length.Message);

        var unsupported = Assert.Throws<ArgumentException>(() => TextTable.FromColumns(("When", new[] { DateTime.MinValue })));
        Assert.Contains("'When'", unsupported.Message);

        var property = Assert.Throws<ArgumentException>(() => TextTable.FromRows([new BadRow(DateTime.MinValue)]));
        Assert.Contains("BadRow.When", property.Message);
    }

    private sealed record Row(string Text, int Label, float Weight);

    private sealed record BadRow(DateTime When);
}
