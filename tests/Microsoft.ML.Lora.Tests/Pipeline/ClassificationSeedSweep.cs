using Xunit.Abstractions;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>
/// Held-out accuracy over several data and training seeds, to choose the classification test's settings so
/// that they are robust, not lucky. A measurement, not a check: run it by hand by removing Skip.
/// Last run (8 seeds, 160 rows, 120 steps): held-out accuracy 0.95–1.00.
/// </summary>
public sealed class ClassificationSeedSweep(ITestOutputHelper output)
{
    [Fact(Skip = "a measurement run by hand (remove Skip); it asserts nothing")]
    public void HeldOutAccuracyOverSeeds()
    {

        for (int seed = 1; seed <= 8; seed++)
        {
            using var run = new ClassificationPipelineFixture(dataSeed: seed * 7, trainingSeed: seed);
            var losses = run.Transformer.TrainingResult!.StepLosses;
            output.WriteLine($"seed {seed}: train {ClassificationPipelineFixture.Accuracy(run.Transformer, run.Train):F3} held-out {ClassificationPipelineFixture.Accuracy(run.Transformer, run.Test):F3} loss {losses[0]:F3} → {losses[^1]:F3}");
        }
    }
}
