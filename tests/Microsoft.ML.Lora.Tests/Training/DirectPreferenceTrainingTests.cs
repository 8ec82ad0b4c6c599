using System.Text.Json;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// DPO through the <see cref="Trainer"/> on the repository's real TinyStories model: stories about Pip the penguin
/// (examples/data/pip-the-penguin.jsonl) preferred over the same stories told about the characters the base model
/// itself opens its stories with (a little girl, a little boy, something big…).
/// </summary>
public sealed class DirectPreferenceTrainingTests : IDisposable
{
    private const string Prompt = "Once upon a time, there was a";

    // The base model's most likely openings after "Once upon a time, there was a" (TinyStories' tokenizer has phrase
    // tokens such as "little girl named "): every rejected story starts with one of them instead of "a penguin named".
    private static readonly string[] Openings = ["a little girl named", "a little boy named", "a little", "a big", "a small", "a boy named", "a girl named"];

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-dpo-train-" + Guid.NewGuid().ToString("N"));

    public DirectPreferenceTrainingTests() => Directory.CreateDirectory(root);

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static string ModelFolder => TokenizerTestFiles.ModelFolder(TokenizerTestFiles.TinyStories);

    [Fact]
    public void PreferringPenguinStoriesRaisesHeldOutRewardAccuracyAndTheGreedyStoryFollows()
    {
        var (train, heldOut) = Pairs();
        using var model = LlamaForCausalLM.Load(ModelFolder);
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        int[] prompt = DirectPreference.PairOf(train[0]).Prompt;
        Assert.Equal(Prompt, tokenizer.Decode(prompt, skipSpecialTokens: true).TrimEnd());
        Assert.All(train.Concat(heldOut), r => Assert.Equal(prompt, DirectPreference.PairOf(r).Prompt));
        string Greedy() => tokenizer.Decode(Generator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = 24, StopTokenIds = [tokenizer.EosTokenId!.Value] }).ToArray(), skipSpecialTokens: true);
        string baseStory = Greedy();
        Assert.DoesNotContain("penguin", baseStory, StringComparison.Ordinal);
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

        // The preferred style is what the adapted model now tells: its greedy story is about a penguin.
        string adaptedStory = Greedy();
        Assert.True(adaptedStory.Split('.')[0].Contains("penguin", StringComparison.Ordinal), $"base: \"{baseStory}\"; after DPO: \"{adaptedStory}\"");

        var rows = File.ReadAllLines(metrics).Select(static l => JsonDocument.Parse(l).RootElement).ToList();
        var steps = rows.Where(static r => r.GetProperty("type").GetString() == "step").ToList();
        Assert.Equal(3 * 24 * Openings.Length / 4, steps.Count);
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

    // Pairs of 24 training and 12 held-out stories: each Pip story (chosen) against the same story opened with each of
    // the base model's likely openings instead of "a penguin named" (rejected); both tokenized whole, the prompt their
    // common first tokens ("Once upon a time, there was a").
    private static (List<TokenRow> Train, List<TokenRow> HeldOut) Pairs()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        int eos = tokenizer.EosTokenId!.Value;
        var rows = File.ReadAllLines(Path.Combine(TokenizerTestFiles.RepoRoot, "examples", "data", "pip-the-penguin.jsonl"))
            .Select(static l => JsonDocument.Parse(l).RootElement.GetProperty("text").GetString()!)
            .SelectMany((story, i) => Openings.Select((opening, j) =>
            {
                Assert.StartsWith(Prompt + " penguin named", story, StringComparison.Ordinal);
                int[] chosen = [.. tokenizer.Encode(story), eos];
                int[] rejected = [.. tokenizer.Encode(story.Replace("a penguin named", opening, StringComparison.Ordinal)), eos];
                int shared = 0;
                while (chosen[shared] == rejected[shared])
                {
                    shared++;
                }

                return DirectPreference.TrainingRow(chosen[..shared], chosen[shared..], rejected[shared..], (i * Openings.Length) + j + 1);
            }))
            .ToList();
        return (rows.Take(24 * Openings.Length).ToList(), rows.Skip(24 * Openings.Length).ToList());
    }
}
