using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>The built-in GRPO rewards and their command-line spelling.</summary>
public sealed class GrpoRewardsTests
{
    private static readonly TokenRow Row = new([1], null, 7, Fields: new Dictionary<string, string> { ["answer"] = "42" });

    [Fact]
    public void BuiltInsScoreAsDocumented()
    {
        Assert.Equal(1, GrpoRewards.ExactMatch("answer")("q", " 42\n", Row));
        Assert.Equal(0, GrpoRewards.ExactMatch("answer")("q", "41", Row));
        Assert.Contains("line 7", Assert.Throws<InvalidDataException>(() => GrpoRewards.ExactMatch("solution")("q", "42", Row)).Message, StringComparison.Ordinal);
        Assert.Equal(1, GrpoRewards.Length(10)("q", "0123456789", Row));
        Assert.Equal(0.5, GrpoRewards.Length(10)("q", "01234", Row), 12);
        Assert.Equal(0, GrpoRewards.Length(10)("q", new string('x', 30), Row));
        Assert.Equal(1, GrpoRewards.Regex("^4")("q", "42", Row));

        var (sum, resources) = GrpoRewards.Parse(["2*exact:answer", "0.5*regex:2$", "length:2"]);
        Assert.Empty(resources);
        Assert.Equal(2 + 0.5 + 1, sum("q", "42", Row), 12);
    }

    [Theory]
    [InlineData("exact:", "exact needs a field")]
    [InlineData("length:0", "positive number")]
    [InlineData("x*regex:a", "not a weight")]
    [InlineData("regex", "not KIND:ARG")]
    [InlineData("cmd:true", "not allowed")]
    public void BadSpecsAreRefusedNamingTheSpec(string spec, string reason)
    {
        var e = Assert.Throws<ArgumentException>(() => GrpoRewards.Parse([spec], allowCommands: false));
        Assert.Contains($"'{spec}'", e.Message, StringComparison.Ordinal);
        Assert.Contains(reason, e.Message, StringComparison.Ordinal);
    }
}
