using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Token-weighted accumulation, global norm and clipping.</summary>
public sealed class GradientsTests
{
    /// <summary>
    /// Accumulated vs one-batch gradients: the same F32 sums in another order and grouping, plus one
    /// rescale per micro-batch. Measured max error 2.4e-7 of the largest gradient; 1e-5 leaves 40× headroom
    /// and is far below the error of unweighted averaging checked below (measured 0.24).
    /// </summary>
    public const double AccumulationTolerance = 1e-5;

    [Fact]
    public void TwoMicroBatchesOfTwoRowsEqualOneBatchOfFour()
    {
        using var model = TrainingTestData.Model();
        var trainable = model.TrainableParameters().ToList();

        // Lengths 5, 12, 3, 9 and a row with ignored labels: the micro-batches hold 4+11 and 2+5 targets.
        var rows = new List<int[]> { Ids(5, 0), Ids(12, 1), Ids(3, 2), Ids(9, 3) };
        var labels = new List<int[]?> { null, null, null, Ids(9, 3) };
        labels[3]![1] = labels[3]![2] = labels[3]![3] = labels[3]![4] = CrossEntropy.IgnoreIndex;
        var all = CausalLmBatch.FromRows(rows, labels);
        var first = CausalLmBatch.FromRows(rows[..2], labels[..2]);
        var second = CausalLmBatch.FromRows(rows[2..], labels[2..]);
        Assert.Equal(15, first.CountTargets());
        Assert.Equal(6, second.CountTargets());

        var whole = Gradients.Accumulate(model, trainable, [all]);
        var wholeGrads = Grads(trainable);
        var accumulated = Gradients.Accumulate(model, trainable, [first, second]);
        var accumulatedGrads = Grads(trainable);

        Assert.Equal(whole.Tokens, accumulated.Tokens);
        Assert.Equal(whole.Sum, accumulated.Sum, AccumulationTolerance * whole.Sum);
        double scale = wholeGrads.Values.Max(g => g.Max(Math.Abs));
        double worst = MaxDifference(wholeGrads, accumulatedGrads);
        Assert.True(worst <= AccumulationTolerance * scale, $"accumulated gradients differ by {worst} (scale {scale})");

        // Proof that the check can fail: the plain mean of the two micro-batch means is off by far more.
        Gradients.Accumulate(model, trainable, [first]);
        var g1 = Grads(trainable);
        Gradients.Accumulate(model, trainable, [second]);
        var g2 = Grads(trainable);
        var naive = g1.ToDictionary(kv => kv.Key, kv => kv.Value.Select((x, i) => 0.5f * (x + g2[kv.Key][i])).ToArray());
        Assert.True(MaxDifference(wholeGrads, naive) > 100 * AccumulationTolerance * scale);
    }

    [Fact]
    public void AccumulateZeroesOldGradientsAndSetsTheDropoutSeedPerMicroBatch()
    {
        using var model = TrainingTestData.Model();
        var trainable = model.TrainableParameters().ToList();
        var batch = CausalLmBatch.FromRows([Ids(6, 0)]);
        Gradients.Accumulate(model, trainable, [batch]);
        var once = Grads(trainable);
        var seeds = new List<int>();
        Gradients.Accumulate(model, trainable, [batch], i =>
        {
            seeds.Add(i);
            return 99;
        });
        Assert.Equal(0, MaxDifference(once, Grads(trainable)));
        Assert.Equal([0], seeds);
        Assert.Equal(99UL, model.DropoutSeed);
    }

    [Fact]
    public void ClippingScalesToExactlyTheMaxNormAndReportsTheNormBefore()
    {
        using var a = Trainable("a", [3f, 0f]);
        using var b = Trainable("b", [0f, 4f, 0f]);
        Parameter[] ps = [a, b];
        Assert.Equal(5.0, Gradients.GlobalNorm(ps));

        Assert.Equal(5.0, Gradients.ClipGlobalNorm(ps, 1.0));

        // g·(1/5) rounded to float: 0.6 and 0.8, norm 1 to float precision (2^-24 relative per element).
        Assert.Equal([0.6f, 0f], a.Grad!.ToFloatArray());
        Assert.Equal([0f, 0.8f, 0f], b.Grad!.ToFloatArray());
        Assert.Equal(1.0, Gradients.GlobalNorm(ps), 1e-7);
    }

    [Theory]
    [InlineData(0.0)]
    [InlineData(5.0)]
    [InlineData(7.5)]
    public void NoClippingWhenDisabledOrWithinTheLimit(double maxNorm)
    {
        using var a = Trainable("a", [3f, -4f]);
        Assert.Equal(5.0, Gradients.ClipGlobalNorm([a], maxNorm));
        Assert.Equal([3f, -4f], a.Grad!.ToFloatArray());
    }

    [Fact]
    public void NonFiniteNormIsReportedAndGradientsAreLeftAlone()
    {
        using var a = Trainable("a", [float.NaN, 1f]);
        using var b = Trainable("b", [float.PositiveInfinity]);
        Assert.True(double.IsNaN(Gradients.ClipGlobalNorm([a], 1.0)));
        Assert.True(double.IsPositiveInfinity(Gradients.ClipGlobalNorm([b], 1.0)));
        Assert.Equal(1f, a.Grad!.ToFloatArray()[1]);
    }

    [Fact]
    public void NormIsSummedInDoubleSoManySmallGradientsDoNotLosePrecision()
    {
        // 2^20 elements of 1e-3. A sequential double sum of n terms errs by at most n·2^-53 relative
        // (≈ 1.2e-10 here), so 1e-9 is a bound; a float running sum errs by far more (checked below).
        const double DoubleSumBound = 1e-9;
        const int N = 1 << 20;
        var values = Enumerable.Repeat(1e-3f, N).ToArray();
        using var a = Trainable("a", values);
        double exact = Math.Sqrt(N * ((double)1e-3f * 1e-3f));
        Assert.Equal(exact, Gradients.GlobalNorm([a]), DoubleSumBound);

        float floatSum = 0;
        foreach (float v in values)
        {
            floatSum += v * v;
        }

        Assert.True(Math.Abs(Math.Sqrt(floatSum) - exact) > 100 * DoubleSumBound);
    }

    internal static Parameter Trainable(string name, float[] grad)
    {
        var p = new Parameter(name, Tensor.Zeros(DType.F32, grad.Length)) { Trainable = true };
        grad.CopyTo(p.Grad!.AsF32());
        return p;
    }

    private static int[] Ids(int length, int start)
    {
        var ids = new int[length];
        ids[0] = start;
        for (int i = 1; i < length; i++)
        {
            ids[i] = TrainingTestData.Permutation[ids[i - 1]];
        }

        return ids;
    }

    private static Dictionary<string, float[]> Grads(IEnumerable<Parameter> ps) => ps.ToDictionary(p => p.Name, p => p.Grad!.ToFloatArray());

    private static double MaxDifference(Dictionary<string, float[]> x, Dictionary<string, float[]> y) =>
        x.Max(kv => kv.Value.Select((v, i) => Math.Abs(v - y[kv.Key][i])).DefaultIfEmpty(0).Max());
}
