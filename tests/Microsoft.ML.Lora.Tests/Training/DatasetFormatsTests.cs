using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

public sealed class DatasetFormatsTests
{
    [Fact]
    public void EveryFormatHasExactlyOneNameThatParsesBackToIt()
    {
        var formats = DatasetFormats.Names.Select(n => DatasetFormats.TryParse(n, out var f) ? f : throw new Xunit.Sdk.XunitException($"'{n}' does not parse")).ToList();
        Assert.Equal(Enum.GetValues<DatasetFormat>().Order(), formats.Order());
        Assert.Equal(formats.Count, formats.Distinct().Count());
    }

    [Theory]
    [InlineData("Prompt-Completion", DatasetFormat.PromptCompletion)]
    [InlineData("TSV", DatasetFormat.Tsv)]
    public void NamesAreCaseInsensitive(string name, DatasetFormat expected)
    {
        Assert.True(DatasetFormats.TryParse(name, out var format));
        Assert.Equal(expected, format);
    }

    [Theory]
    [InlineData("jsonl")]
    [InlineData("")]
    [InlineData(null)]
    public void UnknownNamesDoNotParse(string? name) => Assert.False(DatasetFormats.TryParse(name, out _));
}
