using System.Text.RegularExpressions;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// GRPO through the <see cref="Trainer"/> on the repository's real TinyStories model, with a reward the base model
/// sometimes earns (the completion says "big"): held-out mean reward rises, sampling is seeded and resume is exact.
/// </summary>
public sealed partial class GrpoTrainingTests : IDisposable
{
    private static readonly string[] TrainPrompts =
    [
        "Once upon a time, there was a", "One day, a little girl went to the", "Tom and his mom went to the",
        "Once upon a time, in a big house, there lived a", "Lily wanted to play with her", "One sunny morning, Ben saw a",
        "There was a happy", "Sara had a new",
    ];

    private static readonly string[] HeldOutPrompts = ["Once upon a time, a boy named Max had a", "One day, Mia found a", "The sun was shining and", "Anna and her friend saw a"];

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-grpo-" + Guid.NewGuid().ToString("N"));

    public GrpoTrainingTests() => Directory.CreateDirectory(root);

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static string ModelFolder => TokenizerTestFiles.ModelFolder(TokenizerTestFiles.TinyStories);

    // 1 when the completion says "big" (the base model does in about a quarter of its samples).
    private static double SaysBig(string prompt, string completion, TokenRow row) => BigWord().IsMatch(completion) ? 1 : 0;

    [GeneratedRegex(@"\bbig\b")]
    private static partial Regex BigWord();

    [Fact]
    public void RewardingAWordRaisesTheHeldOutMeanReward()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        var prompts = TrainPrompts.Select((p, i) => new TokenRow(tokenizer.Encode(p), null, i + 1)).ToList();
        using var model = LlamaForCausalLM.Load(ModelFolder);
        model.AddAdapter(new LoraOptions { Rank = 8, Alpha = 16, TargetModules = ["all-linear"] }, seed: 1);
        var grpo = new GrpoOptions { GroupSize = 8, MaxCompletionLength = 32, Temperature = 1.0 };
        double before = HeldOutReward(model, tokenizer);

        string metrics = Path.Combine(root, "metrics.jsonl");
        using (var trainer = new Trainer(model, new TrainingOptions { Grpo = grpo, LearningRate = 1e-2, Epochs = 12, BatchSize = 4, WarmupRatio = 0, Seed = 3, MetricsPath = metrics }))
        {
            trainer.Train(prompts, SaysBig, tokenizer);
        }

        double after = HeldOutReward(model, tokenizer);
        Assert.True(before is > 0.1 and < 0.4, $"the base model earns the reward sometimes: {before:F3}");
        Assert.True(after >= before + 0.3, $"held-out mean reward {before:F3} -> {after:F3}");

        var steps = File.ReadAllLines(metrics).Select(static l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(24, steps.Count);
        Assert.All(steps, static s => Assert.Equal(32, s.GetProperty("completions").GetInt32()));
        Assert.True(steps[^1].GetProperty("reward").GetDouble() > steps[0].GetProperty("reward").GetDouble(), "the training reward rises");
    }

    [Fact]
    public void SamplingIsSeededAndAResumedRunIsBitIdentical()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        var prompts = TrainPrompts.Take(4).Select((p, i) => new TokenRow(tokenizer.Encode(p), null, i + 1)).ToList();
        var options = new TrainingOptions { Grpo = new GrpoOptions { GroupSize = 3, MaxCompletionLength = 8, KlBeta = 0.05 }, LearningRate = 5e-3, Epochs = 2, BatchSize = 2, Seed = 9, CheckpointEverySteps = 2 };
        float[] Run(string dir, bool interrupt)
        {
            using var model = LlamaForCausalLM.Load(ModelFolder);
            model.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 4);
            var run = options with { CheckpointDirectory = dir };
            using (var trainer = new Trainer(model, interrupt ? run with { MaxSteps = 2 } : run))
            {
                trainer.Train(prompts, SaysBig, tokenizer);
            }

            if (!interrupt)
            {
                return model.TrainableParameters().SelectMany(static p => p.Value.ToFloatArray()).ToArray();
            }

            using var fresh = LlamaForCausalLM.Load(ModelFolder);
            fresh.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 77);
            using var resumed = Trainer.Resume(fresh, Path.Combine(dir, "checkpoint-2"), run);
            resumed.Train(prompts, SaysBig, tokenizer);
            return fresh.TrainableParameters().SelectMany(static p => p.Value.ToFloatArray()).ToArray();
        }

        float[] straight = Run(Path.Combine(root, "a"), interrupt: false);
        Assert.Equal(straight, Run(Path.Combine(root, "b"), interrupt: false));
        Assert.Equal(straight, Run(Path.Combine(root, "c"), interrupt: true));
        Assert.Throws<InvalidOperationException>(() =>
        {
            using var model = LlamaForCausalLM.Load(ModelFolder);
            model.AddAdapter(new LoraOptions { Rank = 2 }, seed: 4);
            using var trainer = new Trainer(model, options with { CheckpointEverySteps = 0 });
            trainer.Train(prompts);
        });
    }

    // Mean reward of 16 seeded samples per held-out prompt (the same seeds before and after training).
    private static double HeldOutReward(LlamaForCausalLM model, Microsoft.ML.Lora.Text.Tokenizer tokenizer) =>
        HeldOutPrompts.SelectMany((p, i) => Enumerable.Range(0, 16).Select(k =>
        {
            var options = new GenerationOptions { MaxNewTokens = 32, Temperature = 1.0, Seed = (1000 * i) + k, StopTokenIds = [tokenizer.EosTokenId!.Value] };
            string completion = tokenizer.Decode(Generator.Generate(model, tokenizer.Encode(p), options).ToArray(), skipSpecialTokens: true);
            return SaysBig(p, completion, null!);
        })).Average();
}
