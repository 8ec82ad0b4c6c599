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

    [Fact]
    public void IterationsReuseEachGenerationsSamplesAndAResumeBetweenThemIsExact()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        var prompts = TrainPrompts.Take(4).Select((p, i) => new TokenRow(tokenizer.Encode(p), null, i + 1)).ToList();
        var options = new TrainingOptions
        {
            Grpo = new GrpoOptions { GroupSize = 3, MaxCompletionLength = 8, Iterations = 3, Epsilon = 0.05 },
            LearningRate = 3e-2, Epochs = 1, BatchSize = 2, WarmupRatio = 0, Seed = 9, CheckpointEverySteps = 1,
        };
        float[] Run(string dir, string? resumeFrom, double dropout)
        {
            using var model = LlamaForCausalLM.Load(ModelFolder);
            model.AddAdapter(new LoraOptions { Rank = 2, Dropout = dropout }, seed: resumeFrom is null ? 4 : 77);
            var run = options with { CheckpointDirectory = Path.Combine(dir, "checkpoints"), MetricsPath = Path.Combine(dir, "metrics.jsonl") };
            using (var trainer = resumeFrom is null ? new Trainer(model, run) : Trainer.Resume(model, resumeFrom, run))
            {
                trainer.Train(prompts, LengthReward, tokenizer);
            }

            return model.TrainableParameters().SelectMany(static p => p.Value.ToFloatArray()).ToArray();
        }

        // Two batches of prompts, three optimizer steps each on the same samples: π_old stays the sampling policy, so
        // without dropout the first step of a batch clips nothing (ratio 1) and the later ones move the ratio until the clip acts.
        Run(Path.Combine(root, "plain"), null, dropout: 0);
        var steps = File.ReadAllLines(Path.Combine(root, "plain", "metrics.jsonl")).Select(static l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
        Assert.Equal(6, steps.Count);
        foreach (int first in new[] { 0, 3 })
        {
            Assert.Equal(0, steps[first].GetProperty("clip_ratio").GetDouble());
            for (int k = 1; k < 3; k++)
            {
                Assert.Equal(steps[first].GetProperty("reward").GetDouble(), steps[first + k].GetProperty("reward").GetDouble());
                Assert.Equal(steps[first].GetProperty("completion_length").GetDouble(), steps[first + k].GetProperty("completion_length").GetDouble());
            }
        }

        Assert.True(new[] { 1, 2, 4, 5 }.Any(k => steps[k].GetProperty("clip_ratio").GetDouble() > 0), "a later iteration of a batch clips some tokens");
        Assert.NotEqual(steps[0].GetProperty("reward").GetDouble(), steps[3].GetProperty("reward").GetDouble());

        // Checkpoints between a batch's steps carry its samples; those at a batch's end do not need them. With dropout,
        // each iteration draws its own masks, and a resume continues bit for bit.
        string straightDir = Path.Combine(root, "straight");
        float[] straight = Run(straightDir, null, dropout: 0.1);
        string checkpoints = Path.Combine(straightDir, "checkpoints");
        Assert.Equal([true, true, false, true, true, false], Enumerable.Range(1, 6).Select(k => File.Exists(Path.Combine(checkpoints, $"checkpoint-{k}", "grpo_generation.safetensors"))));
        Assert.Equal(straight, Run(Path.Combine(root, "from1"), Path.Combine(checkpoints, "checkpoint-1"), dropout: 0.1));
        Assert.Equal(straight, Run(Path.Combine(root, "from3"), Path.Combine(checkpoints, "checkpoint-3"), dropout: 0.1));
        Assert.Equal(straight, Run(Path.Combine(root, "from5"), Path.Combine(checkpoints, "checkpoint-5"), dropout: 0.1));

        // The stored samples are checked like any file: a token id outside the vocabulary is refused by name.
        string broken = Path.Combine(root, "broken");
        CopyFolder(Path.Combine(checkpoints, "checkpoint-4"), broken);
        string samples = Path.Combine(broken, "grpo_generation.safetensors");
        using (var file = Microsoft.ML.Lora.Formats.SafeTensorsFile.Open(samples))
        {
            var entries = file.Tensors.Keys.Select(name => name == "completion_ids"
                ? Microsoft.ML.Lora.Formats.SafeTensorEntry.FromInt64(name, [(int)file.ReadInt64(name).Length], file.ReadInt64(name).Select((t, i) => i == 0 ? 1L << 40 : t).ToArray())
                : Microsoft.ML.Lora.Formats.SafeTensorEntry.FromBytes(name, file.Info(name).DType, file.Info(name).Shape.ToArray(), file.GetBytes(name).ToArray())).ToList();
            Microsoft.ML.Lora.Formats.SafeTensorsWriter.Write(samples + ".new", entries);
        }

        File.Move(samples + ".new", samples, overwrite: true);
        using var fresh = LlamaForCausalLM.Load(ModelFolder);
        fresh.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 4);
        var e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(fresh, broken, options with { CheckpointDirectory = Path.Combine(root, "c") }));
        Assert.Contains("'completion_ids'", e.Message, StringComparison.Ordinal);
        Assert.Contains("grpo_generation.safetensors", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void HeldOutPromptsAreScoredWithSeedsFixedForTheRun()
    {
        var tokenizer = TokenizerTestFiles.Get(TokenizerTestFiles.TinyStories);
        var prompts = TrainPrompts.Take(4).Select((p, i) => new TokenRow(tokenizer.Encode(p), null, i + 1)).ToList();
        var heldOut = HeldOutPrompts.Select((p, i) => new TokenRow(tokenizer.Encode(p), null, i + 1)).ToList();
        var grpo = new GrpoOptions { GroupSize = 2, MaxCompletionLength = 10 };
        const int Seed = 21;
        using var model = LlamaForCausalLM.Load(ModelFolder);
        model.AddAdapter(new LoraOptions { Rank = 2 }, seed: 4);
        string metrics = Path.Combine(root, "metrics.jsonl");
        var expected = new List<double>();
        var reported = new List<GrpoStepStats>();

        // When a step reports, the model is as the evaluation saw it: score the held-out prompts independently.
        var progress = new ProgressLog(p =>
        {
            reported.Add(p.ValidationGrpo!.Value);
            expected.Add(heldOut.SelectMany((row, i) => Enumerable.Range(0, grpo.GroupSize).Select(g =>
            {
                var sampling = new GenerationOptions { MaxNewTokens = 10, Temperature = 1.0, Seed = TrainingRandom.EvaluationSampleSeed(Seed, i, g), StopTokenIds = [tokenizer.EosTokenId!.Value] };
                return LengthReward(string.Empty, tokenizer.Decode(Generator.Generate(model, row.InputIds, sampling).ToArray(), skipSpecialTokens: true), row);
            })).Average());
        });
        using (var trainer = new Trainer(model, new TrainingOptions { Grpo = grpo, LearningRate = 5e-2, MaxSteps = 3, BatchSize = 2, WarmupRatio = 0, Seed = Seed, EvalEverySteps = 1, MetricsPath = metrics }))
        {
            trainer.Train(prompts, LengthReward, tokenizer, heldOut, progress);
        }

        Assert.Equal(3, reported.Count);
        Assert.All(reported, r => Assert.Equal(heldOut.Count * grpo.GroupSize, r.Completions));
        Assert.Equal(expected, reported.Select(static r => r.RewardMean));
        Assert.True(expected.Distinct().Count() > 1, "the adapter changes between evaluations, and so do the samples' rewards");
        var evals = File.ReadAllLines(metrics).Select(static l => System.Text.Json.JsonDocument.Parse(l).RootElement).Where(static r => r.GetProperty("type").GetString() == "eval").ToList();
        Assert.Equal(expected, evals.Select(static r => r.GetProperty("validation_reward").GetDouble()));
    }

    // A graded reward: the completion's length in characters over 40.
    private static double LengthReward(string prompt, string completion, TokenRow row) => completion.Length / 40.0;

    private static void CopyFolder(string from, string to)
    {
        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from))
        {
            File.Copy(file, Path.Combine(to, Path.GetFileName(file)));
        }
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
