using System.Text.Json;
using Microsoft.ML.Lora.Tests.Text;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>Text in, text out through the CLI: tokenize, train on prompt/completion JSONL, generate.</summary>
public sealed class TextCommandTests
{
    private static readonly (string Prompt, string Completion)[] Pairs =
    [
        ("capital of France? ", "Paris"),
        ("2+2=", "4"),
        ("color of the sky? ", "blue"),
        ("dog says ", "woof"),
    ];

    [Fact]
    public void TokenizePrintsIdsAsAJsonArray()
    {
        using var tmp = new TempDir();
        string model = TinyTextModel.Create(Path.Combine(tmp.Path, "model"));
        var (exit, output, error) = CliRunner.Run("tokenize", "--model", model, "--text", "hi é");
        Assert.True(exit == 0, error);
        Assert.Equal("[104,105,32,195,169]", output.Trim());

        // --file names a folder: said so, not "Access denied".
        (exit, _, error) = CliRunner.Run("tokenize", "--model", model, "--file", tmp.Path);
        Assert.Equal(1, exit);
        Assert.Contains($"--file '{tmp.Path}' is a folder", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void TrainOnPromptCompletionThenGenerateAnswersTheTrainedPrompts(bool full)
    {
        using var tmp = new TempDir();
        string model = TinyTextModel.Create(Path.Combine(tmp.Path, "model"));
        string data = Path.Combine(tmp.Path, "pairs.jsonl");
        File.WriteAllLines(data, Pairs.Select(p => JsonSerializer.Serialize(new { prompt = p.Prompt, completion = p.Completion })));
        string outDir = Path.Combine(tmp.Path, "out");
        // LoRA: 5e-3 and 1e-2 both learned all four answers in 250–300 steps; 2e-2 overshot ("Pari").
        string[] method = full ? ["--full", "--lr", "3e-3"] : ["--rank", "16", "--alpha", "32", "--lr", "5e-3"];
        var (exit, _, error) = CliRunner.Run(["train", "--model", model, "--data", data, "--out", outDir, "--batch-size", "4", "--max-steps", full ? "150" : "300", "--schedule", "cosine", "--seed", "1", .. method]);
        Assert.True(exit == 0, error);

        string[] target = full ? ["--model", Path.Combine(outDir, "model")] : ["--model", model, "--adapter", outDir];
        foreach (var (prompt, completion) in Pairs)
        {
            var (code, output, err) = CliRunner.Run(["generate", .. target, "--prompt", prompt, "--max-new-tokens", "12"]);
            Assert.True(code == 0, err);
            Assert.Equal(completion, output.TrimEnd('\n'));
        }
    }

    [Fact]
    public void BadTextRowsNameTheirLineOrAreSkippedAndCounted()
    {
        using var tmp = new TempDir();
        string model = TinyTextModel.Create(Path.Combine(tmp.Path, "model"));
        string data = Path.Combine(tmp.Path, "mixed.jsonl");
        File.WriteAllLines(data, ["{\"text\": \"hello there\"}", "{\"text\": \"\"}", "not json", "{\"text\": \"bye now\"}"]);
        var (exit, _, error) = CliRunner.Run("eval", "--model", model, "--data", data);
        Assert.Equal(1, exit);
        Assert.Contains("line 2", error, StringComparison.Ordinal);

        (exit, var output, error) = CliRunner.Run("eval", "--model", model, "--data", data, "--skip-bad-rows");
        Assert.True(exit == 0, error);
        Assert.Contains("skipped 2 bad rows", error, StringComparison.Ordinal);
        Assert.StartsWith("loss=", output, StringComparison.Ordinal);
    }
}
