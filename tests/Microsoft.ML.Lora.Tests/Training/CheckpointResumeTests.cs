using System.Text.Json;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Checkpoints: layout, bit-identical resume, and clear errors for mismatches and bad folders.</summary>
public sealed class CheckpointResumeTests : IDisposable
{
    private readonly string root = TrainingTestData.TempDirectory();

    // 20 training rows, batch 3, accumulation 2: 7 micro-batches and 4 steps per epoch (the last step of
    // each epoch has a single micro-batch of 2 rows), so 10 steps cross two epoch boundaries, and the
    // checkpoint at step 5 sits inside the second epoch.
    private TrainingOptions Options(string checkpoints) => new()
    {
        LearningRate = 1e-2,
        BatchSize = 3,
        GradientAccumulationSteps = 2,
        MaxSteps = 10,
        WarmupSteps = 3,
        Schedule = LearningRateScheduleKind.Cosine,
        EvalEverySteps = 3,
        CheckpointEverySteps = 5,
        CheckpointDirectory = checkpoints,
        Seed = 11,
    };

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void ResumedRunIsBitIdenticalToAnUninterruptedOne()
    {
        var train = TrainingTestData.Rows(20, seed: 5);
        var validation = TrainingTestData.Rows(6, seed: 6, firstLine: 101);

        // A: ten steps in one go.
        string dirA = Path.Combine(root, "a");
        var logA = new ProgressLog();
        Dictionary<string, float[]> finalA;
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dirA)))
        {
            trainer.Train(train, validation, logA);
            finalA = TrainingTestData.Snapshot(model);

            // Step 10 is the second of epoch 2 (7 micro-batches per epoch): micro-steps 16 and 17.
            Assert.Equal(TrainingRandom.DropoutSeed(11, 17), model.DropoutSeed);
        }

        // B: cancelled after step 7, so steps 6 and 7 are lost and checkpoint-5 is the last one written.
        string dirB = Path.Combine(root, "b");
        using var cancel = new CancellationTokenSource();
        var logB = new ProgressLog(p =>
        {
            if (p.Step == 7)
            {
                cancel.Cancel();
            }
        });
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dirB)))
        {
            Assert.ThrowsAny<OperationCanceledException>(() => trainer.Train(train, validation, logB, cancel.Token));
            Assert.Equal(7, trainer.GlobalStep);
        }

        Assert.Equal(Path.Combine(dirB, "checkpoint-5"), Checkpoint.FindLatest(dirB));

        // Everything disposed; a fresh model (other random init, to prove the values come from the
        // checkpoint) and a trainer resumed from checkpoint-5 finish the run.
        var logC = new ProgressLog();
        Dictionary<string, float[]> finalC;
        using (var model = TrainingTestData.Model(seed: 999))
        using (var trainer = Trainer.Resume(model, Path.Combine(dirB, "checkpoint-5")))
        {
            Assert.Equal(5, trainer.GlobalStep);
            Assert.Equal(5, trainer.Optimizer.StepCount);
            var result = trainer.Train(train, validation, logC);
            Assert.Equal(10, result.GlobalStep);
            Assert.Equal(Path.Combine(dirB, "checkpoint-10"), result.LastCheckpoint);
            Assert.Equal(TrainingRandom.DropoutSeed(11, 17), model.DropoutSeed);
            finalC = TrainingTestData.Snapshot(model);
        }

        // Bit for bit: step losses, learning rates, gradient norms and validation losses ...
        var resumed = logB.Reports.Take(5).Concat(logC.Reports).ToList();
        Assert.Equal(Enumerable.Range(1, 10), resumed.Select(r => r.Step));
        Assert.Equal(logA.Reports.Select(r => r.Loss), resumed.Select(r => r.Loss));
        Assert.Equal(logA.Reports.Select(r => r.LearningRate), resumed.Select(r => r.LearningRate));
        Assert.Equal(logA.Reports.Select(r => r.GradNorm), resumed.Select(r => r.GradNorm));
        Assert.Equal(logA.Reports.Select(r => r.ValidationLoss), resumed.Select(r => r.ValidationLoss));

        // ... and every final parameter value.
        Assert.Equal(finalA.Keys, finalC.Keys);
        foreach (var (name, values) in finalA)
        {
            Assert.True(values.AsSpan().SequenceEqual(finalC[name]), $"{name} differs after resume");
        }

        // The steps lost in B recomputed identically too (same order and masks after the restart).
        Assert.Equal(logB.Reports.Skip(5).Select(r => r.Loss), logC.Reports.Take(2).Select(r => r.Loss));
        Assert.True(File.ReadAllBytes(Path.Combine(dirA, "checkpoint-10", Checkpoint.ParametersFileName))
            .AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(dirB, "checkpoint-10", Checkpoint.ParametersFileName))));
    }

    [Fact]
    public void CheckpointFolderHoldsParametersMomentsAndState()
    {
        var train = TrainingTestData.Rows(20, seed: 5);
        string dir = Path.Combine(root, "layout");
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, Options(dir) with { MaxSteps = 5 });
        trainer.Train(train);

        Assert.Equal(["checkpoint-5"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));
        string ckpt = Path.Combine(dir, "checkpoint-5");
        Assert.Equal(
            [Checkpoint.OptimizerFileName, Checkpoint.ParametersFileName, Checkpoint.StateFileName],
            Directory.EnumerateFiles(ckpt).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        var names = model.TrainableParameters().Select(p => p.Name).ToList();
        using (var values = SafeTensorsFile.Open(Path.Combine(ckpt, Checkpoint.ParametersFileName)))
        {
            Assert.Equal(names.Order(StringComparer.Ordinal), values.Tensors.Keys.Order(StringComparer.Ordinal));
            var embed = model.TrainableParameters().First();
            Assert.Equal(embed.Value.ToFloatArray(), values.ReadFloats(embed.Name));
        }

        using (var moments = SafeTensorsFile.Open(Path.Combine(ckpt, Checkpoint.OptimizerFileName)))
        {
            Assert.Equal([5L], moments.ReadInt64("step"));
            Assert.Equal(1 + (2 * names.Count), moments.Tensors.Count);
            Assert.Equal(trainer.Optimizer.ExpAvgSq(0).ToFloatArray(), moments.ReadFloats("exp_avg_sq." + names[0]));
        }

        using var state = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(ckpt, Checkpoint.StateFileName)));
        var s = state.RootElement;
        Assert.Equal(5, s.GetProperty("global_step").GetInt32());
        Assert.Equal(5, s.GetProperty("total_steps").GetInt32());
        Assert.Equal(4, s.GetProperty("steps_per_epoch").GetInt32());
        Assert.Equal(1, s.GetProperty("epoch").GetInt32());
        Assert.Equal(6, s.GetProperty("epoch_position").GetInt32());
        // Step 5 is the first of epoch 1: micro-batches 7 and 8 (7 per epoch), so the next is 9.
        Assert.Equal(9, s.GetProperty("rng").GetProperty("next_micro_step").GetInt64());
        Assert.Equal(20, s.GetProperty("train_rows").GetInt32());
        Assert.Equal(1e-2, s.GetProperty("options").GetProperty("learning_rate").GetDouble());
        Assert.Equal("Cosine", s.GetProperty("options").GetProperty("schedule").GetString());
    }

    [Fact]
    public void ResumeIntoAModelWithOtherTrainableParametersNamesThem()
    {
        string dir = Path.Combine(root, "mismatch");
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dir) with { MaxSteps = 5 }))
        {
            trainer.Train(TrainingTestData.Rows(20, seed: 5));
        }

        string ckpt = Path.Combine(dir, "checkpoint-5");
        using (var partly = TrainingTestData.Model())
        {
            partly.EmbedTokens.Trainable = false;
            var e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(partly, ckpt));
            Assert.Contains("'model.embed_tokens.weight' is in the checkpoint but not trainable in the model", e.Message);
        }

        using (var wider = TrainingTestData.Model(hidden: 16))
        {
            var e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(wider, ckpt));
            Assert.Contains("'model.embed_tokens.weight' has shape [32, 32] in the checkpoint but [32, 16] in the model", e.Message);
        }
    }

    [Fact]
    public void ResumeWithOtherDataIsRefused()
    {
        string dir = Path.Combine(root, "data");
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dir) with { MaxSteps = 5 }))
        {
            trainer.Train(TrainingTestData.Rows(20, seed: 5));
        }

        using var fresh = TrainingTestData.Model();
        using var resumed = Trainer.Resume(fresh, Path.Combine(dir, "checkpoint-5"));
        var e = Assert.Throws<InvalidOperationException>(() => resumed.Train(TrainingTestData.Rows(20, seed: 77)));
        Assert.Contains("differ from those of the run being continued", e.Message);
    }

    [Fact]
    public void IncompleteCheckpointIsReportedByFileName()
    {
        string dir = Path.Combine(root, "broken");
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dir) with { MaxSteps = 5 }))
        {
            trainer.Train(TrainingTestData.Rows(20, seed: 5));
        }

        string ckpt = Path.Combine(dir, "checkpoint-5");
        File.Delete(Path.Combine(ckpt, Checkpoint.OptimizerFileName));
        using var fresh = TrainingTestData.Model();
        var e = Assert.Throws<FileNotFoundException>(() => Trainer.Resume(fresh, ckpt));
        Assert.Contains(Checkpoint.OptimizerFileName + " not found", e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => Trainer.Resume(fresh, Path.Combine(dir, "checkpoint-6")));
    }

    [Fact]
    public void DamagedTrainerStateIsReportedWithFileAndField()
    {
        string dir = Path.Combine(root, "state");
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dir) with { MaxSteps = 5 }))
        {
            trainer.Train(TrainingTestData.Rows(20, seed: 5));
        }

        string ckpt = Path.Combine(dir, "checkpoint-5");
        string statePath = Path.Combine(ckpt, Checkpoint.StateFileName);
        string good = File.ReadAllText(statePath);
        using var fresh = TrainingTestData.Model();

        File.WriteAllText(statePath, good.Replace("\"batch_size\": 3", "\"batch_size\": 0", StringComparison.Ordinal));
        var e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(fresh, ckpt));
        Assert.Contains(statePath, e.Message);
        Assert.Contains("TrainingOptions.BatchSize = 0", e.Message);

        File.WriteAllText(statePath, good.Replace("\"global_step\"", "\"globalstep\"", StringComparison.Ordinal));
        e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(fresh, ckpt));
        Assert.Contains($"{statePath}: \"global_step\" is missing", e.Message);

        File.WriteAllText(statePath, good[..(good.Length / 2)]);
        e = Assert.Throws<InvalidDataException>(() => Trainer.Resume(fresh, ckpt));
        Assert.Contains("not valid JSON", e.Message);
    }

    [Fact]
    public void UnwritableCheckpointFolderFailsBeforeTrainingWithThePath()
    {
        // Tests may run as root, where permission bits do not stop writes; a folder below a regular
        // file cannot be created by anyone.
        string file = Path.Combine(root, "not-a-folder");
        File.WriteAllText(file, "x");
        string target = Path.Combine(file, "checkpoints");
        using var model = TrainingTestData.Model();
        var before = TrainingTestData.Snapshot(model);
        using var trainer = new Trainer(model, Options(target));
        var e = Assert.Throws<IOException>(() => trainer.Train(TrainingTestData.Rows(20, seed: 5)));
        Assert.Contains($"'{target}' is not writable", e.Message);
        Assert.Equal(0, trainer.GlobalStep);
        Assert.Equal(before, TrainingTestData.Snapshot(model));
        Assert.Equal(["not-a-folder"], Directory.EnumerateFileSystemEntries(root).Select(Path.GetFileName));
    }

    [Fact]
    public void FailedOrCancelledCheckpointWriteLeavesNothingBehind()
    {
        string dir = Path.Combine(root, "direct");
        using var model = TrainingTestData.Model();
        using var trainer = new Trainer(model, Options(dir) with { MaxSteps = 2, CheckpointEverySteps = 0, CheckpointDirectory = null });
        trainer.Train(TrainingTestData.Rows(20, seed: 5));

        // Cancelled while writing: the temporary folder is removed.
        Assert.ThrowsAny<OperationCanceledException>(() => trainer.SaveCheckpoint(dir, new CancellationToken(canceled: true)));
        Assert.Empty(Directory.EnumerateFileSystemEntries(dir));

        // Unwritable destination: an IOException naming the checkpoint path, nothing created.
        string file = Path.Combine(root, "file");
        File.WriteAllText(file, "x");
        var e = Assert.Throws<IOException>(() => trainer.SaveCheckpoint(Path.Combine(file, "sub")));
        Assert.Contains($"'{Path.Combine(file, "sub", "checkpoint-2")}'", e.Message);
        Assert.Contains("Nothing was left behind", e.Message);

        // A second save of the same step replaces the first whole.
        string first = trainer.SaveCheckpoint(dir);
        Assert.Equal(first, trainer.SaveCheckpoint(dir));
        Assert.Equal(["checkpoint-2"], Directory.EnumerateFileSystemEntries(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void FindLatestIgnoresTemporaryAndIncompleteFolders()
    {
        string dir = Path.Combine(root, "latest");
        Directory.CreateDirectory(Path.Combine(dir, "checkpoint-9"));
        File.WriteAllText(Path.Combine(dir, "checkpoint-9", Checkpoint.StateFileName), "{}");
        Directory.CreateDirectory(Path.Combine(dir, "checkpoint-10"));
        Directory.CreateDirectory(Path.Combine(dir, ".checkpoint-12.abc.tmp"));
        File.WriteAllText(Path.Combine(dir, ".checkpoint-12.abc.tmp", Checkpoint.StateFileName), "{}");
        Assert.Equal(Path.Combine(dir, "checkpoint-9"), Checkpoint.FindLatest(dir));
        Assert.Null(Checkpoint.FindLatest(Path.Combine(dir, "missing")));
    }
}
