using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>The stateless seeded randomness behind data order, validation split and dropout seeds.</summary>
public sealed class TrainingRandomTests
{
    [Fact]
    public void MixIsSplitMix64()
    {
        // First outputs of Vigna's splitmix64.c seeded with 0 and with 1234567.
        Assert.Equal(0xE220A8397B1DCDAFUL, TrainingRandom.Mix(0));
        Assert.Equal(6457827717110365317UL, TrainingRandom.Mix(1234567));
    }

    [Fact]
    public void EpochOrderIsASeededPermutationThatChangesPerEpoch()
    {
        int[] e0 = TrainingRandom.EpochOrder(50, seed: 42, epoch: 0, shuffle: true);
        Assert.Equal(Enumerable.Range(0, 50), e0.Order());
        Assert.Equal(e0, TrainingRandom.EpochOrder(50, 42, 0, true));
        Assert.NotEqual(e0, TrainingRandom.EpochOrder(50, 42, 1, true));
        Assert.NotEqual(e0, TrainingRandom.EpochOrder(50, 43, 0, true));
        Assert.Equal(Enumerable.Range(0, 50), TrainingRandom.EpochOrder(50, 42, 0, shuffle: false));
        Assert.Empty(TrainingRandom.EpochOrder(0, 42, 0, true));
    }

    [Fact]
    public void ShuffleIsUniformEnough()
    {
        // Where element 0 lands over 4000 epochs of a 4-element shuffle: 1000 expected per slot,
        // σ = √(4000·¼·¾) ≈ 27; ±150 is 5.5σ, so a fair shuffle fails with odds < 1e-7, and a
        // classic off-by-one Fisher–Yates (never leaving an element in place) puts 0 in slot 0 never.
        var counts = new int[4];
        for (int epoch = 0; epoch < 4000; epoch++)
        {
            counts[Array.IndexOf(TrainingRandom.EpochOrder(4, 42, epoch, true), 0)]++;
        }

        Assert.All(counts, c => Assert.InRange(c, 850, 1150));
    }

    [Fact]
    public void DropoutSeedsDependOnlyOnSeedAndMicroStep()
    {
        Assert.Equal(TrainingRandom.DropoutSeed(42, 17), TrainingRandom.DropoutSeed(42, 17));
        var seeds = Enumerable.Range(0, 1000).Select(i => TrainingRandom.DropoutSeed(42, i)).ToHashSet();
        Assert.Equal(1000, seeds.Count);
        Assert.NotEqual(TrainingRandom.DropoutSeed(42, 0), TrainingRandom.DropoutSeed(43, 0));
    }
}
