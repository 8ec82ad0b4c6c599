using System.Text.Json;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// DPO through the <see cref="Trainer"/> on the repository's real TinyStories model: stories about Pip the penguin
/// (examples/data/pip-the-penguin.jsonl) preferred over the same stories told about a little girl named Amy.
/// </summary>
public sealed class DirectPreferenceTrainingTests : IDisposable
{
    private const string Prompt = "Once upon a time, there was a";

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-dpo-train-" + Guid.NewGuid().ToString("N"));

    public DirectPreferenceTrainingTests() => Directory.CreateDirectory(root);

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static string ModelFolder => TokenizerTestFiles.ModelFolder(TokenizerTestFiles.TinyStories);

    [Fact]
    public void PreferringPipStoriesRaisesHeldOutRewardAccuracy()
    {
        var (train, heldOut) = Pairs();
        using var model = LlamaForCausalLM.Load(ModelFolder);
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        Assert.Equal(Prompt, tokenizer.Decode(DirectPreference.PairOf(train[0]).Prompt, skipSpecialTokens: true).TrimEnd());
        var preference = new PreferenceOptions();
        var heldOutPairs = heldOut.Select(DirectPreference.PairOf).ToList();

        // At step 0 the policy is the reference: every reward is 0, the loss ln 2 and no pair ranked right.
        model.AddAdapter(new LoraOptions { Rank = 8, Alpha = 16, TargetModules = ["all-linear"] }, seed: 1);
        var start = DirectPreference.Evaluate(model, heldOutPairs, preference);
        Assert.Equal(Math.Log(2), start.Loss, 12);
        Assert.Equal(0, start.Correct);

        string metrics = Path.Combine(root, "metrics.jsonl");
        var options = new TrainingOptions { Preference = preference, LearningRate = 2e-3, Epochs = 3, BatchSize = 4, WarmupRatio = 0, Seed = 7, MetricsPath = metrics };
        using (var trainer = new Trainer(model, options))
        {
            trainer.Train(train, heldOut);
        }

        var end = DirectPreference.Evaluate(model, heldOutPairs, preference);
        Assert.True(end.Accuracy >= 0.9, $"held-out reward accuracy {end.Accuracy:F2} after DPO (margin {end.Margin:F3})");
        Assert.True(end.Loss < 0.5 * Math.Log(2), $"held-out DPO loss {end.Loss:F4}");

        var rows = File.ReadAllLines(metrics).Select(static l => JsonDocument.Parse(l).RootElement).ToList();
        var steps = rows.Where(static r => r.GetProperty("type").GetString() == "step").ToList();
        Assert.Equal(18, steps.Count);
        Assert.All(steps, static s => Assert.True(s.TryGetProperty("reward_accuracy", out _) && s.TryGetProperty("loss", out _) && s.TryGetProperty("reward_margin", out _)));
        Assert.Contains(rows, static r => r.GetProperty("type").GetString() == "eval" && r.GetProperty("validation_reward_accuracy").GetDouble() >= 0.9);
    }

    [Fact]
    public void AResumedPreferenceRunIsBitIdenticalToAnUninterruptedOne()
    {
        var (train, _) = Pairs();
        train = train.Take(12).ToList();
        float[] Run(string dir, bool interrupt)
        {
            using var model = LlamaForCausalLM.Load(ModelFolder);
            model.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 3);
            var options = new TrainingOptions { Preference = new PreferenceOptions { Beta = 0.2 }, LearningRate = 1e-3, Epochs = 2, BatchSize = 2, GradientAccumulationSteps = 2, Seed = 5, CheckpointEverySteps = 2, CheckpointDirectory = dir };
            using (var trainer = new Trainer(model, interrupt ? options with { MaxSteps = 2 } : options))
            {
                trainer.Train(train);
            }

            if (interrupt)
            {
                using var fresh = LlamaForCausalLM.Load(ModelFolder);
                fresh.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 99);
                using var resumed = Trainer.Resume(fresh, Path.Combine(dir, "checkpoint-2"), options);
                resumed.Train(train);
                return fresh.TrainableParameters().SelectMany(static p => p.Value.ToFloatArray()).ToArray();
            }

            return model.TrainableParameters().SelectMany(static p => p.Value.ToFloatArray()).ToArray();
        }

        float[] straight = Run(Path.Combine(root, "a"), interrupt: false);
        float[] resumed = Run(Path.Combine(root, "b"), interrupt: true);
        Assert.Equal(straight, resumed);

        // Another β is another run: refused on resume, by name.
        using var other = LlamaForCausalLM.Load(ModelFolder);
        other.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 3);
        var e = Assert.Throws<ArgumentException>(() => Trainer.Resume(other, Path.Combine(root, "b", "checkpoint-2"), new TrainingOptions { Preference = new PreferenceOptions { Beta = 0.3 }, LearningRate = 1e-3, Epochs = 2, BatchSize = 2, GradientAccumulationSteps = 2, Seed = 5 }));
        Assert.Contains("Preference", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MixingPairsAndPlainRowsIsRefusedNamingTheLine()
    {
        using var model = LlamaForCausalLM.Load(ModelFolder);
        model.AddAdapter(new LoraOptions { Rank = 2 }, seed: 1);
        var pair = DirectPreference.TrainingRow([1, 80], [147, 2], [380, 2], line: 3);
        var plain = new TokenRow([1, 80, 147], null, 4);
        using var dpo = new Trainer(model, new TrainingOptions { Preference = new PreferenceOptions() });
        Assert.Contains("line 4", Assert.Throws<ArgumentException>(() => dpo.Train([pair, plain])).Message, StringComparison.Ordinal);
        using var sft = new Trainer(model, new TrainingOptions());
        Assert.Contains("line 3", Assert.Throws<ArgumentException>(() => sft.Train([pair, plain])).Message, StringComparison.Ordinal);
    }

    // 24 training and 12 held-out pairs: each Pip story (chosen) against the same story told about a little girl named
    // Amy (rejected), the opening the base model itself prefers; both tokenized whole, the prompt their common first tokens.
    private static (List<TokenRow> Train, List<TokenRow> HeldOut) Pairs()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        int eos = tokenizer.EosTokenId!.Value;
        var rows = File.ReadAllLines(Path.Combine(TokenizerTestFiles.RepoRoot, "examples", "data", "pip-the-penguin.jsonl"))
            .Select(static l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)
            .Select((story, i) =>
            {
                Assert.StartsWith(Prompt, story, StringComparison.Ordinal);
                string other = story.Replace("a penguin named Pip", "a little girl named Amy", StringComparison.Ordinal).Replace("Pip", "Amy", StringComparison.Ordinal);
                int[] chosen = [.. tokenizer.Encode(story), eos];
                int[] rejected = [.. tokenizer.Encode(other), eos];
                int shared = 0;
                while (chosen[shared] == rejected[shared])
                {
                    shared++;
                }

                return DirectPreference.TrainingRow(chosen[..shared], chosen[shared..], rejected[shared..], i + 1);
            })
            .ToList();
        return (rows.Take(24).ToList(), rows.Skip(24).ToList());
    }
}
