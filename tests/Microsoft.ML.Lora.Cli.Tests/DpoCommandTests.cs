using System.Text.Json;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora dpo</c> on the repository's TinyStories model: pairs in TRL's text and chat layouts, metrics, resume, errors.</summary>
public sealed class DpoCommandTests : IDisposable
{
    private const string Prompt = "Once upon a time, there was a";

    private static readonly string RepoRoot = Path.GetDirectoryName(Path.GetDirectoryName(FixturePaths.Root)!)!;

    private static readonly string Model = Path.Combine(RepoRoot, "models", "tinystories-656k");

    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public void TrainsOnTextPairsWritesTheAdapterAndPreferenceMetricsAndResumesExactly()
    {
        string data = Pairs(8);
        string a = Path.Combine(tmp.Path, "a"), b = Path.Combine(tmp.Path, "b");
        string[] common = ["dpo", "--model", Model, "--data", data, "--rank", "2", "--dropout", "0.1", "--max-steps", "4", "--batch-size", "2", "--checkpoint-every", "2", "--beta", "0.2", "--lr", "1e-3"];
        var (exit, output, error) = CliRunner.Run([.. common, "--out", a]);
        Assert.True(exit == 0, error);
        Assert.Contains("DPO (sigmoid, beta=0.2)", output, StringComparison.Ordinal);
        Assert.Contains("8 pairs", output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(a, "adapter_model.safetensors")));

        var steps = File.ReadAllLines(Path.Combine(a, "metrics.jsonl")).Select(static l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(4, steps.Count);
        Assert.Equal(Math.Log(2), steps[0].GetProperty("loss").GetDouble(), 12);
        Assert.All(steps, static s => Assert.Equal(2, s.GetProperty("pairs").GetInt32()));
        Assert.All(steps, static s => Assert.True(s.TryGetProperty("reward_accuracy", out _) && s.TryGetProperty("logps_chosen", out _)));

        (exit, _, error) = CliRunner.Run([.. common, "--out", b, "--resume", Path.Combine(a, "checkpoints", "checkpoint-2")]);
        Assert.True(exit == 0, error);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(b, "adapter_model.safetensors")));

        (exit, _, error) = CliRunner.Run("dpo", "--model", Model, "--data", data, "--out", Path.Combine(tmp.Path, "c"), "--resume", Path.Combine(a, "checkpoints", "checkpoint-2"), "--beta", "0.3");
        Assert.Equal(1, exit);
        Assert.Contains("Preference", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ChatPairsRenderWithTheTemplateAndBadRowsNameTheLineAndField()
    {
        string chat = Path.Combine(tmp.Path, "chat.jsonl");
        File.WriteAllLines(chat,
        [
            """{"prompt": [{"role": "user", "content": "Tell me a story."}], "chosen": [{"role": "assistant", "content": "Once upon a time, there was a penguin named Pip."}], "rejected": "No."}""",
            """{"prompt": [{"role": "user", "content": "Another one."}], "chosen": "Pip sailed his red boat.", "rejected": [{"role": "assistant", "content": "Go away."}]}""",
        ]);
        var (exit, output, error) = CliRunner.Run("dpo", "--model", Model, "--data", chat, "--out", Path.Combine(tmp.Path, "chat"), "--max-steps", "1", "--chat-template", "chatml", "--loss", "ipo");
        Assert.True(exit == 0, error);
        Assert.Contains("DPO (ipo", output, StringComparison.Ordinal);

        string bad = Path.Combine(tmp.Path, "bad.jsonl");
        File.WriteAllLines(bad, [File.ReadAllLines(Pairs(1))[0], """{"prompt": "Once", "chosen": "upon"}"""]);
        (exit, _, error) = CliRunner.Run("dpo", "--model", Model, "--data", bad, "--out", Path.Combine(tmp.Path, "bad"));
        Assert.Equal(1, exit);
        Assert.Contains("bad.jsonl:2", error, StringComparison.Ordinal);
        Assert.Contains("\"rejected\"", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(tmp.Path, "bad")));

        (exit, _, error) = CliRunner.Run("dpo", "--model", Model, "--data", chat, "--out", Path.Combine(tmp.Path, "x"), "--loss", "hinge");
        Assert.Equal(1, exit);
        Assert.Contains("--loss 'hinge'", error, StringComparison.Ordinal);
    }

    // Pip stories (examples/data/pip-the-penguin.jsonl) preferred over the same stories about a little girl named Amy.
    private string Pairs(int count)
    {
        string path = Path.Combine(tmp.Path, $"pairs-{count}.jsonl");
        var lines = File.ReadAllLines(Path.Combine(RepoRoot, "examples", "data", "pip-the-penguin.jsonl")).Take(count).Select(line =>
        {
            string story = JsonDocument.Parse(line).RootElement.GetProperty("text").GetString()!;
            string chosen = story[Prompt.Length..];
            string rejected = chosen.Replace("penguin named Pip", "little girl named Amy", StringComparison.Ordinal).Replace("Pip", "Amy", StringComparison.Ordinal);
            return JsonSerializer.Serialize(new Dictionary<string, string> { ["prompt"] = Prompt, ["chosen"] = chosen, ["rejected"] = rejected });
        });
        File.WriteAllLines(path, lines);
        return path;
    }
}
