using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Training with packing computes the same steps as training on the same examples unpacked.</summary>
public sealed class PackedTrainingTests
{
    // Same tokens, same targets, another grouping (one packed row vs several padded rows): F32
    // reductions in another order only (measured ~1e-7 relative).
    private const double Tolerance = 1e-5;

    [Fact]
    public void APackedStepEqualsTheSameExamplesUnpacked()
    {
        // 6 rows of 6–12 tokens fit one packed row of 96; one step sees all of them either way.
        var rows = TrainingTestData.Rows(6, seed: 21);
        var common = new TrainingOptions { LearningRate = 1e-2, MaxSteps = 2, WarmupSteps = 0, MaxSequenceLength = 96, Seed = 5 };

        using var packedModel = TrainingTestData.Model();
        using var packed = new Trainer(packedModel, common with { Packing = true, BatchSize = 1 });
        var packedResult = packed.Train(rows);

        using var plainModel = TrainingTestData.Model();
        using var plain = new Trainer(plainModel, common with { BatchSize = 6 });
        var plainResult = plain.Train(rows);

        for (int i = 0; i < 2; i++)
        {
            Assert.Equal(plainResult.StepLosses[i], packedResult.StepLosses[i], Tolerance * plainResult.StepLosses[i]);
        }

        var expected = TrainingTestData.Snapshot(plainModel);
        foreach (var (name, values) in TrainingTestData.Snapshot(packedModel))
        {
            Models.ReferenceModelTests.AssertClose(expected[name], values, 1e-4, $"{name} after two packed steps");
        }
    }

    [Fact]
    public void PackingIsKeptInCheckpointsAndCountsPackedRows()
    {
        var rows = TrainingTestData.Rows(20, seed: 22);
        string dir = TrainingTestData.TempDirectory();
        try
        {
            using var model = TrainingTestData.Model();
            using var trainer = new Trainer(model, new TrainingOptions { Packing = true, MaxSequenceLength = 40, BatchSize = 2, Epochs = 1, CheckpointEverySteps = 1, CheckpointDirectory = dir });
            var result = trainer.Train(rows);

            // 20 rows of 6–12 tokens (≈ 180 tokens) pack into ≥ 5 rows of 40: ⌈rows / 2⌉ steps, far fewer than 10.
            Assert.InRange(result.GlobalStep, 3, 6);
            using var fresh = TrainingTestData.Model();
            using var resumed = Trainer.Resume(fresh, Checkpoint.FindLatest(dir)!);
            Assert.True(resumed.Options.Packing);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
