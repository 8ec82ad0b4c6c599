namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>
/// Sizes from flags near 2^31 are refused by name before anything is allocated or computed with them
/// (they used to overflow into a "diverged" loss, "total steps -2", a negative token count or an out-of-memory abort).
/// </summary>
public sealed class SizeLimitTests
{
    private static readonly string Model = FixturePaths.Case("llama_gqa");
    private static readonly string Data = Path.Combine(FixturePaths.Case("llama_gqa"), "eval.jsonl");

    [Theory]
    [InlineData("--batch-size", "2147483647", "BatchSize = 2147483647")]
    [InlineData("--grad-accum", "2147483647", "GradientAccumulationSteps = 2147483647")]
    [InlineData("--seq-len", "2147483647", "MaxSequenceLength = 2147483647")]
    [InlineData("--epochs", "2147483647", "Epochs = 2147483647")]
    [InlineData("--rank", "2147483647", "rank must be 1")]
    public void TrainRefusesAHugeFlagByName(string flag, string value, string expected)
    {
        using var tmp = new TempDir();
        string adapter = Path.Combine(tmp.Path, "adapter");
        var (exit, _, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", adapter, "--max-steps", "2", flag, value);
        Assert.Equal(1, exit);
        Assert.Contains(expected, error, StringComparison.Ordinal);
        Assert.DoesNotContain("diverged", error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(adapter, "adapter_model.safetensors")));
    }

    [Fact]
    public void GenerateRefusesMoreTokensThanTheModelHasPositions()
    {
        using var tmp = new TempDir();
        string model = Microsoft.ML.Lora.Tests.Text.TinyTextModel.Create(Path.Combine(tmp.Path, "model"));
        var (exit, _, error) = CliRunner.Run("generate", "--model", model, "--prompt", "2+2=", "--max-new-tokens", "2147483647");
        Assert.Equal(1, exit);
        Assert.Contains("max new tokens must be 1", error, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("generate", "--model", model, "--prompt", "2+2=", "--max-new-tokens", "16000000");
        Assert.Equal(1, exit);
        Assert.Contains("max_position_embeddings", error, StringComparison.Ordinal);
    }

    [Fact]
    public void BenchRefusesAStepTooLargeToHold()
    {
        var (exit, _, error) = CliRunner.Run("bench", "--layers", "1", "--hidden", "64", "--heads", "4", "--vocab", "128", "--intermediate", "96", "--seq", "2147483647", "--batch", "2147483647");
        Assert.Equal(1, exit);
        Assert.Contains("--batch 2147483647 × --seq 2147483647", error, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("bench", "--layers", "2147483647", "--hidden", "64", "--heads", "4", "--vocab", "128", "--intermediate", "96");
        Assert.Equal(1, exit);
        Assert.Contains("num_hidden_layers", error, StringComparison.Ordinal);
    }
}
