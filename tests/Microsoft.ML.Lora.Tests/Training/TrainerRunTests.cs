using System.Text.Json;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Divergence, cancellation, the metrics log, data preparation and argument errors.</summary>
public sealed class TrainerRunTests : IDisposable
{
    private readonly string root = TrainingTestData.TempDirectory();

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void NanWeightStopsAtStepOneNamingTheRowsAndWritesNoCheckpoint()
    {
        using var model = TrainingTestData.Model();
        model.Norm.Weight.Value.AsF32()[3] = float.NaN;
        var before = TrainingTestData.Snapshot(model);
        string dir = Path.Combine(root, "nan");
        var train = TrainingTestData.Rows(8, seed: 1, firstLine: 40);
        using var trainer = new Trainer(model, new TrainingOptions { BatchSize = 4, Shuffle = false, CheckpointEverySteps = 1, CheckpointDirectory = dir });

        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train(train));
        Assert.Equal(1, e.Step);
        Assert.Equal([40, 41, 42, 43], e.Lines);
        Assert.Contains("training diverged at step 1: the loss is NaN on the batch of rows at lines 40, 41, 42, 43", e.Message);
        Assert.Contains("lower the learning rate", e.Message);
        Assert.IsAssignableFrom<InvalidOperationException>(e);

        // No update was applied and nothing was written.
        Assert.Equal(0, trainer.GlobalStep);
        Assert.Equal(0, trainer.Optimizer.StepCount);
        Assert.Equal(before.Keys, TrainingTestData.Snapshot(model).Keys);
        Assert.All(before, kv => Assert.True(kv.Value.AsSpan().SequenceEqual(TrainingTestData.Snapshot(model)[kv.Key])));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));
    }

    [Fact]
    public void AbsurdLearningRateDivergesOnALaterStepAndKeepsEarlierCheckpoints()
    {
        // Adam moves every weight by ≈ lr on its first step, so lr = 1e30 makes the weights ~1e30 and
        // the next forward pass overflows.
        using var model = TrainingTestData.Model();
        string dir = Path.Combine(root, "lr");
        var options = new TrainingOptions { LearningRate = 1e30, WarmupSteps = 0, Schedule = LearningRateScheduleKind.Constant, BatchSize = 2, CheckpointEverySteps = 1, CheckpointDirectory = dir };
        using var trainer = new Trainer(model, options);
        var e = Assert.Throws<TrainingDivergedException>(() => trainer.Train(TrainingTestData.Rows(8, seed: 1)));
        Assert.Equal(2, e.Step);
        Assert.Contains("at step 2", e.Message);
        Assert.Contains("this step used 1E+30", e.Message);
        Assert.Equal(["checkpoint-1"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void CancellationStopsWithinAStepAndKeepsTheLastCheckpoint()
    {
        string dir = Path.Combine(root, "cancel");
        using var cancel = new CancellationTokenSource();
        var log = new ProgressLog(p =>
        {
            if (p.Step == 3)
            {
                cancel.Cancel();
            }
        });
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, new TrainingOptions { BatchSize = 2, CheckpointEverySteps = 2, CheckpointDirectory = dir });
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Train(TrainingTestData.Rows(16, seed: 1), progress: log, cancellationToken: cancel.Token));
        Assert.Equal(3, trainer.GlobalStep);
        Assert.Equal(3, log.Reports.Count);
        Assert.Equal(["checkpoint-2"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));

        // The kept checkpoint is complete: it resumes.
        using var fresh = TrainingTestData.Model();
        using var resumed = Trainer.Resume(fresh, Path.Combine(dir, "checkpoint-2"));
        Assert.Equal(8, resumed.Train(TrainingTestData.Rows(16, seed: 1)).GlobalStep);
    }

    [Fact]
    public void MetricsLogHasOneLinePerStepAndPerEvaluation()
    {
        string path = Path.Combine(root, "logs", "metrics.jsonl");
        var log = new ProgressLog();
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, new TrainingOptions { BatchSize = 4, MaxSteps = 5, EvalEverySteps = 2, MetricsPath = path });
        trainer.Train(TrainingTestData.Rows(16, seed: 1), TrainingTestData.Rows(4, seed: 2), log);

        var lines = File.ReadAllLines(path).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        var steps = lines.Where(l => l.GetProperty("type").GetString() == "step").ToList();
        var evals = lines.Where(l => l.GetProperty("type").GetString() == "eval").ToList();
        Assert.Equal(5 + 3, lines.Count);
        Assert.Equal([1, 2, 3, 4, 5], steps.Select(l => l.GetProperty("step").GetInt32()));
        Assert.Equal(log.Reports.Select(r => r.Loss), steps.Select(l => l.GetProperty("loss").GetDouble()));
        Assert.Equal(log.Reports.Select(r => r.GradNorm), steps.Select(l => l.GetProperty("grad_norm").GetDouble()));
        Assert.Equal([2, 4, 5], evals.Select(l => l.GetProperty("step").GetInt32()));
        Assert.Equal(log.Reports.Where(r => r.ValidationLoss is not null).Select(r => r.ValidationLoss!.Value), evals.Select(l => l.GetProperty("validation_loss").GetDouble()));
    }

    [Fact]
    public void EpochsDefineTheStepsAndEvaluationRunsAtEachEpochEnd()
    {
        // 10 rows, batch 3, accumulation 2: ⌈⌈10/3⌉/2⌉ = 2 steps per epoch, 3 epochs.
        var log = new ProgressLog();
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, new TrainingOptions { BatchSize = 3, GradientAccumulationSteps = 2, Epochs = 3 });
        var result = trainer.Train(TrainingTestData.Rows(10, seed: 1), TrainingTestData.Rows(3, seed: 2), log);
        Assert.Equal(6, result.GlobalStep);
        Assert.Equal([2, 4, 6], log.Reports.Where(r => r.ValidationLoss is not null).Select(r => r.Step));

        // Every row is seen once per epoch: epoch 1's steps hold 6 + 4 rows' targets.
        var rows = TrainingTestData.Rows(10, seed: 1);
        Assert.Equal(rows.Sum(r => r.InputIds.Length - 1), log.Reports[0].Tokens + log.Reports[1].Tokens);
    }

    [Fact]
    public void ValidationFractionHoldsOutSeededRows()
    {
        var log = new ProgressLog();
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, new TrainingOptions { BatchSize = 4, ValidationFraction = 0.25 });
        var result = trainer.Train(TrainingTestData.Rows(16, seed: 1), progress: log);

        // 12 training rows → 3 steps; the 4 held-out rows are evaluated at the end.
        Assert.Equal(3, result.GlobalStep);
        Assert.NotNull(result.LastValidationLoss);
        Assert.Equal(log.Reports[^1].ValidationLoss, result.LastValidationLoss);

        using var other = TrainingTestData.Model();
        using var both = new Trainer(other, new TrainingOptions { ValidationFraction = 0.25 });
        var e = Assert.Throws<ArgumentException>(() => both.Train(TrainingTestData.Rows(16, seed: 1), TrainingTestData.Rows(2, seed: 2)));
        Assert.Contains("use one or the other", e.Message);
    }

    [Fact]
    public void LongRowsAreTruncatedAndRowsWithoutTargetsAreNamed()
    {
        using var model = TrainingTestData.Model();
        var rows = TrainingTestData.Rows(8, seed: 1);
        using (var trainer = new Trainer(model, new TrainingOptions { BatchSize = 8, MaxSequenceLength = 4, WarmupSteps = 0 }))
        {
            var log = new ProgressLog();
            var result = trainer.Train(rows, progress: log);
            Assert.Equal(8, result.TruncatedRows);
            Assert.Equal(8 * 3, log.Reports[0].Tokens);
        }

        var bad = rows.Take(3).Append(new TokenRow([5], null, 77)).ToList();
        using var t2 = new Trainer(model, new TrainingOptions());
        var e = Assert.Throws<ArgumentException>(() => t2.Train(bad));
        Assert.Contains("training row at line 77 has no token to predict", e.Message);

        var ignored = new TokenRow([1, 2, 3], [1, -100, -100], 78);
        Assert.Contains("line 78", Assert.Throws<ArgumentException>(() => t2.Train([ignored])).Message);
        Assert.Contains("line 79, position 1", Assert.Throws<ArgumentException>(() => t2.Train([new TokenRow([1, 32], null, 79)])).Message);
        Assert.Contains("empty", Assert.Throws<ArgumentException>(() => t2.Train([])).Message);
    }

    [Fact]
    public void ModelWithNothingTrainableIsRefused()
    {
        using var model = TrainingTestData.Model();
        model.SetTrainable(false);
        var e = Assert.Throws<ArgumentException>(() => new Trainer(model, new TrainingOptions()));
        Assert.Contains("no trainable parameters", e.Message);
    }

    [Fact]
    public void OnlySelectedParametersChange()
    {
        using var model = TrainingTestData.Model();
        model.SetTrainable(false);
        model.LmHead.Weight.Trainable = true;
        var embed = model.EmbedTokens.Value.ToFloatArray();
        var head = model.LmHead.Weight.Value.ToFloatArray();
        using var trainer = new Trainer(model, new TrainingOptions { BatchSize = 4, MaxSteps = 2, WarmupSteps = 0 });
        trainer.Train(TrainingTestData.Rows(8, seed: 1));
        Assert.Equal(embed, model.EmbedTokens.Value.ToFloatArray());
        Assert.NotEqual(head, model.LmHead.Weight.Value.ToFloatArray());
    }
}
