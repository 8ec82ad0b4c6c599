using System.Globalization;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora bench</c> runs a tiny shape end to end; its speed is measured by eng/bench.sh, never here.</summary>
public sealed partial class BenchCommandTests
{
    [Fact]
    public void BenchReportsThroughputAndAPlausibleInitialLoss()
    {
        var (exit, output, error) = CliRunner.Run("bench", "--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--intermediate", "96", "--vocab", "128", "--seq", "16", "--batch", "2", "--steps", "2");
        Assert.True(exit == 0, error);
        var m = BenchLine().Match(output);
        Assert.True(m.Success, output);
        Assert.True(double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) > 0);

        // Weights ~ N(0, 0.02) make the logits nearly uniform: the loss is ln V to within a few percent.
        double loss = double.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture);
        Assert.Equal(Math.Log(128), loss, 0.05 * Math.Log(128));
    }

    [Fact]
    public void BenchRejectsBadShapes()
    {
        var (exit, _, error) = CliRunner.Run("bench", "--layers", "1", "--hidden", "64", "--heads", "3", "--kv-heads", "2");
        Assert.Equal(1, exit);
        Assert.Contains("error:", error, StringComparison.Ordinal);
    }

    [GeneratedRegex(@"^tokens/s=([0-9.]+) .* loss=([0-9.]+)\s*$")]
    private static partial Regex BenchLine();
}
