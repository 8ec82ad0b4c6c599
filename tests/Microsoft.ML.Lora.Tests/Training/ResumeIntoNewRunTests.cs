using System.Security.Cryptography;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// Resume is explicit: a resumed run writes where its options say, may change only its length and cadence,
/// refuses a base loaded otherwise, and a run folder moved elsewhere resumes into itself.
/// </summary>
public sealed class ResumeIntoNewRunTests : IDisposable
{
    private readonly string root = TrainingTestData.TempDirectory();
    private readonly List<TokenRow> train = TrainingTestData.Rows(20, seed: 5);

    public void Dispose() => Directory.Delete(root, recursive: true);

    private static TrainingOptions Options(string run, int maxSteps = 6) => new()
    {
        LearningRate = 1e-2,
        BatchSize = 3,
        GradientAccumulationSteps = 2,
        MaxSteps = maxSteps,
        Schedule = LearningRateScheduleKind.Cosine,
        CheckpointEverySteps = 2,
        CheckpointDirectory = Path.Combine(run, "checkpoints"),
        MetricsPath = Path.Combine(run, "metrics.jsonl"),
        Seed = 11,
    };

    private Dictionary<string, float[]> RunA(out string dirA)
    {
        dirA = Path.Combine(root, "a");
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, Options(dirA));
        trainer.Train(train);
        return TrainingTestData.Snapshot(model);
    }

    private static Dictionary<string, string> Hashes(string dir) => Directory.GetFiles(dir, "*", SearchOption.AllDirectories)
        .ToDictionary(f => Path.GetRelativePath(dir, f), f => Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(f))));

    [Fact]
    public void ResumingIntoANewFolderWritesThereLeavesTheOriginalByteIdenticalAndEndsWhereTheRunWould()
    {
        var finalA = RunA(out string dirA);
        var before = Hashes(dirA);
        string dirB = Path.Combine(root, "b");
        using (var model = TrainingTestData.Model(seed: 999))
        using (var trainer = Trainer.Resume(model, Path.Combine(dirA, "checkpoints", "checkpoint-2"), Options(dirB)))
        {
            var result = trainer.Train(train);
            Assert.Equal(6, result.GlobalStep);
            Assert.Equal(Path.Combine(dirB, "checkpoints", "checkpoint-6"), result.LastCheckpoint);
            var finalB = TrainingTestData.Snapshot(model);
            Assert.All(finalA, p => Assert.True(p.Value.AsSpan().SequenceEqual(finalB[p.Key]), $"{p.Key} differs"));
        }

        Assert.Equal(before, Hashes(dirA));
        Assert.Equal(["checkpoint-4", "checkpoint-6"], Directory.GetDirectories(Path.Combine(dirB, "checkpoints")).Select(Path.GetFileName).Order());
        Assert.Equal(4, File.ReadLines(Path.Combine(dirB, "metrics.jsonl")).Count(l => l.Contains("\"type\":\"step\"", StringComparison.Ordinal)));
    }

    [Fact]
    public void OptionsThatDecideTheStepsMustStayAndAreNamed()
    {
        RunA(out string dirA);
        using var model = TrainingTestData.Model();
        var changed = Options(Path.Combine(root, "c")) with { LearningRate = 1e-3, BatchSize = 4 };
        var e = Assert.Throws<ArgumentException>(() => Trainer.Resume(model, Path.Combine(dirA, "checkpoints", "checkpoint-2"), changed));
        Assert.Contains("LearningRate (checkpoint 0.01, asked 0.001)", e.Message, StringComparison.Ordinal);
        Assert.Contains("BatchSize (checkpoint 3, asked 4)", e.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(root, "c")));
    }

    [Fact]
    public void TheLastCheckpointResumesCleanlyAndALongerRunContinuesIt()
    {
        RunA(out string dirA);
        string last = Path.Combine(dirA, "checkpoints", "checkpoint-6");
        using (var model = TrainingTestData.Model())
        using (var trainer = Trainer.Resume(model, last, Options(Path.Combine(root, "same"))))
        {
            var result = trainer.Train(train);
            Assert.Equal(6, result.GlobalStep);
            Assert.Empty(result.StepLosses);
        }

        using (var model = TrainingTestData.Model())
        using (var trainer = Trainer.Resume(model, last, Options(Path.Combine(root, "longer"), maxSteps: 8)))
        {
            var result = trainer.Train(train);
            Assert.Equal(8, result.GlobalStep);
            Assert.Equal(2, result.StepLosses.Count);
        }

        using (var model = TrainingTestData.Model())
        using (var trainer = Trainer.Resume(model, last, Options(Path.Combine(root, "shorter"), maxSteps: 4)))
        {
            var e = Assert.Throws<InvalidOperationException>(() => trainer.Train(train));
            Assert.Contains("already took 6 steps, more than the 4", e.Message, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void ABaseLoadedWithAnotherDTypeIsRefused()
    {
        // A LoRA run over F32 base weights, resumed over the same base quantized to NF4 (same adapter set).
        string dir = Path.Combine(root, "lora");
        LlamaForCausalLM Base()
        {
            var model = TrainingTestData.Model();
            model.SetTrainable(false);
            return model;
        }

        using (var model = Base())
        {
            model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 1);
            using var trainer = new Trainer(model, Options(dir, maxSteps: 2));
            trainer.Train(train);
        }

        using var quantized = Base();
        quantized.QuantizeNf4(doubleQuant: false);
        quantized.AddAdapter(new LoraOptions { Rank = 4 }, seed: 1);
        var e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(quantized, Path.Combine(dir, "checkpoints", "checkpoint-2")));
        Assert.Contains("over f32 base weights; this model's are nf4", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AMovedRunFolderResumesIntoItself()
    {
        RunA(out string dirA);
        string moved = Path.Combine(root, "moved");
        CopyTree(dirA, moved);
        string state = File.ReadAllText(Path.Combine(moved, "checkpoints", "checkpoint-2", Checkpoint.StateFileName));
        Assert.DoesNotContain(root, state, StringComparison.Ordinal);
        var options = Checkpoint.Options(Path.Combine(moved, "checkpoints", "checkpoint-2"));
        Assert.Equal(Path.Combine(moved, "checkpoints"), options.CheckpointDirectory);
        Assert.Equal(Path.Combine(moved, "metrics.jsonl"), options.MetricsPath);
    }

    private static void CopyTree(string from, string to)
    {
        foreach (string dir in Directory.GetDirectories(from, "*", SearchOption.AllDirectories))
        {
            Directory.CreateDirectory(Path.Combine(to, Path.GetRelativePath(from, dir)));
        }

        Directory.CreateDirectory(to);
        foreach (string file in Directory.GetFiles(from, "*", SearchOption.AllDirectories))
        {
            File.Copy(file, Path.Combine(to, Path.GetRelativePath(from, file)));
        }
    }
}
