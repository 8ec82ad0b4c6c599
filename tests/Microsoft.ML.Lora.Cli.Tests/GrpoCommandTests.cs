using System.Text.Json;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora grpo</c> on the repository's TinyStories model: rewards by flag (regex, weighted length, an external command), metrics, resume, errors.</summary>
public sealed class GrpoCommandTests : IDisposable
{
    private static readonly string RepoRoot = Path.GetDirectoryName(Path.GetDirectoryName(FixturePaths.Root)!)!;

    private static readonly string Model = Path.Combine(RepoRoot, "models", "tinystories-656k");

    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public void TrainsWithSummedRewardsWritesRewardMetricsAndResumesExactly()
    {
        string prompts = Prompts();
        string heldOut = Path.Combine(tmp.Path, "held-out.jsonl");
        File.WriteAllLines(heldOut, new[] { "The sun was shining and", "Anna and her friend saw a" }.Select(static p => JsonSerializer.Serialize(new { prompt = p, answer = "big" })));
        string a = Path.Combine(tmp.Path, "a"), b = Path.Combine(tmp.Path, "b");

        // Two optimizer steps per batch of samples; checkpoint 3 falls between the two steps of the second batch.
        string[] common = ["grpo", "--model", Model, "--data", prompts, "--val-data", heldOut, "--eval-every", "2", "--reward", @"regex:\bbig\b", "--reward", "0.5*length:60",
            "--group-size", "3", "--max-new-tokens", "12", "--num-iterations", "2", "--max-steps", "4", "--batch-size", "2", "--rank", "2", "--dropout", "0.1",
            "--checkpoint-every", "3", "--kl-beta", "0.05", "--seed", "3"];
        var (exit, output, error) = CliRunner.Run([.. common, "--out", a]);
        Assert.True(exit == 0, error);
        Assert.Contains("GRPO (bnpo, group 3)", output, StringComparison.Ordinal);
        Assert.Contains("4 prompts", output, StringComparison.Ordinal);
        var rows = File.ReadAllLines(Path.Combine(a, "metrics.jsonl")).Select(static l => JsonDocument.Parse(l).RootElement).ToList();
        var steps = rows.Where(static r => r.GetProperty("type").GetString() == "step").ToList();
        Assert.Equal(4, steps.Count);
        Assert.Equal(steps[0].GetProperty("reward").GetDouble(), steps[1].GetProperty("reward").GetDouble());
        var evals = rows.Where(static r => r.GetProperty("type").GetString() == "eval").ToList();
        Assert.Equal([2, 4], evals.Select(static r => r.GetProperty("step").GetInt32()));
        Assert.All(evals, static r => Assert.Equal(6, r.GetProperty("validation_completions").GetInt32()));
        Assert.All(evals, static r => Assert.InRange(r.GetProperty("validation_reward").GetDouble(), 0, 1.5));
        Assert.All(steps, static s => Assert.Equal(6, s.GetProperty("completions").GetInt32()));
        Assert.All(steps, static s => Assert.InRange(s.GetProperty("reward").GetDouble(), 0, 1.5));
        Assert.All(steps, static s => Assert.True(s.GetProperty("kl").GetDouble() >= 0));

        Assert.True(File.Exists(Path.Combine(a, "checkpoints", "checkpoint-3", "grpo_generation.safetensors")));
        (exit, _, error) = CliRunner.Run([.. common, "--out", b, "--resume", Path.Combine(a, "checkpoints", "checkpoint-3")]);
        Assert.True(exit == 0, error);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(b, "adapter_model.safetensors")));
    }

    [Fact]
    public void AnExternalCommandScoresEveryCompletionAndBadRewardsAreNamed()
    {
        string prompts = Prompts();
        string log = Path.Combine(tmp.Path, "seen.jsonl");
        string script = Path.Combine(tmp.Path, "reward.sh");
        File.WriteAllText(script, $"#!/bin/sh\nwhile read line; do echo \"$line\" >> '{log}'; echo 0.25; done\n");
        var (exit, _, error) = CliRunner.Run("grpo", "--model", Model, "--data", prompts, "--out", Path.Combine(tmp.Path, "cmd"), "--reward", $"cmd:sh {script}", "--group-size", "2", "--max-new-tokens", "6", "--max-steps", "1", "--batch-size", "2");
        Assert.True(exit == 0, error);
        var seen = File.ReadAllLines(log).Select(static l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(4, seen.Count);
        Assert.All(seen, static s => Assert.Equal("big", s.GetProperty("fields").GetProperty("answer").GetString()));
        Assert.All(seen, static s => Assert.False(string.IsNullOrEmpty(s.GetProperty("completion").GetString())));

        (exit, _, error) = CliRunner.Run("grpo", "--model", Model, "--data", prompts, "--out", Path.Combine(tmp.Path, "bad"), "--reward", "bogus:1");
        Assert.Equal(1, exit);
        Assert.Contains("reward 'bogus:1'", error, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("grpo", "--model", Model, "--data", prompts, "--out", Path.Combine(tmp.Path, "bad2"), "--reward", "regex:(");
        Assert.Equal(1, exit);
        Assert.Contains("not a regular expression", error, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("grpo", "--model", Model, "--data", prompts, "--out", Path.Combine(tmp.Path, "bad3"));
        Assert.Equal(1, exit);
        Assert.Contains("--reward", error, StringComparison.Ordinal);
    }

    private string Prompts()
    {
        string path = Path.Combine(tmp.Path, "prompts.jsonl");
        File.WriteAllLines(path, new[] { "Once upon a time, there was a", "One day, a little girl went to the", "Tom and his mom went to the", "Lily wanted to play with her" }
            .Select(static p => JsonSerializer.Serialize(new { prompt = p, answer = "big" })));
        return path;
    }
}
