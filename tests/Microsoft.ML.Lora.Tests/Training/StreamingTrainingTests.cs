using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Training from a streamed source: same steps as in memory, shuffled epochs that cover every row, exact resume.</summary>
public sealed class StreamingTrainingTests : IDisposable
{
    private readonly string root = TrainingTestData.TempDirectory();

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void StreamedRunWithoutShuffleEqualsTheInMemoryRunBitForBit()
    {
        var rows = TrainingTestData.Rows(30, seed: 31);
        var options = new TrainingOptions { LearningRate = 1e-2, BatchSize = 4, GradientAccumulationSteps = 2, Epochs = 2, Shuffle = false, Seed = 3 };
        using var a = TrainingTestData.Model();
        using var b = TrainingTestData.Model();
        using var inMemory = new Trainer(a, options);
        using var streamed = new Trainer(b, options);
        var r1 = inMemory.Train(rows);
        var r2 = streamed.Train(() => Generate(rows));
        Assert.Equal(r1.StepLosses, r2.StepLosses);
        Assert.Equal(TrainingTestData.Snapshot(a).Values.SelectMany(v => v), TrainingTestData.Snapshot(b).Values.SelectMany(v => v));
    }

    [Fact]
    public void ShuffledStreamVisitsEveryRowOncePerEpochInASeededOrder()
    {
        // 3000 rows > the 1024-row shuffle buffer, so the buffer really streams.
        var rows = TrainingTestData.Rows(3000, seed: 32);
        var options = new TrainingOptions { BatchSize = 100, Epochs = 2, Seed = 9 };
        var data = TrainingData.PrepareStreaming(() => Generate(rows), null, options, TrainingTestData.Vocab);
        Assert.Equal(3000, data.TrainCount);
        Assert.Empty(data.Train);
        var epochs = new List<int>[2] { [], [] };
        for (int step = 0; step < data.TotalSteps; step++)
        {
            foreach (var (_, batchRows) in data.MicroBatches(step, out int epoch, out _))
            {
                epochs[epoch].AddRange(batchRows.Select(r => r.Line));
            }
        }

        foreach (var lines in epochs)
        {
            Assert.Equal(Enumerable.Range(1, 3000), lines.Order());
            Assert.NotEqual(Enumerable.Range(1, 3000), lines);
        }

        Assert.NotEqual(epochs[0], epochs[1]);

        // A fresh plan with the same seed serves step 17 with the same rows (a resume re-opens and skips).
        var again = TrainingData.PrepareStreaming(() => Generate(rows), null, options, TrainingTestData.Vocab);
        var expected = data.MicroBatches(17, out _, out _).SelectMany(m => m.Rows).Select(r => r.Line);
        Assert.Equal(expected, again.MicroBatches(17, out _, out _).SelectMany(m => m.Rows).Select(r => r.Line));
    }

    [Fact]
    public void StreamedRunResumesBitForBit()
    {
        var rows = TrainingTestData.Rows(40, seed: 33);
        string dirA = Path.Combine(root, "a"), dirB = Path.Combine(root, "b");
        TrainingOptions Options(string dir) => new() { LearningRate = 1e-2, BatchSize = 3, MaxSteps = 8, CheckpointEverySteps = 4, CheckpointDirectory = dir, Seed = 4 };
        IReadOnlyList<double> straight;
        Dictionary<string, float[]> final;
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dirA)))
        {
            straight = [.. trainer.Train(() => Generate(rows)).StepLosses];
            final = TrainingTestData.Snapshot(model);
        }

        using (var cancel = new CancellationTokenSource())
        using (var model = TrainingTestData.Model())
        using (var trainer = new Trainer(model, Options(dirB)))
        {
            var log = new ProgressLog(p =>
            {
                if (p.Step == 5)
                {
                    cancel.Cancel();
                }
            });
            Assert.ThrowsAny<OperationCanceledException>(() => trainer.Train(() => Generate(rows), null, log, cancel.Token));
        }

        using (var model = TrainingTestData.Model(seed: 99))
        using (var trainer = Trainer.Resume(model, Path.Combine(dirB, "checkpoint-4")))
        {
            var rest = trainer.Train(() => Generate(rows)).StepLosses;
            Assert.Equal(straight.Skip(4), rest);
            foreach (var (name, values) in TrainingTestData.Snapshot(model))
            {
                Assert.True(values.AsSpan().SequenceEqual(final[name]), $"{name} differs after a streamed resume");
            }
        }
    }

    // A source that yields rows lazily, as a file reader does (no list behind it).
    private static IEnumerable<TokenRow> Generate(IReadOnlyList<TokenRow> rows)
    {
        foreach (var r in rows)
        {
            yield return r with { };
        }
    }
}
