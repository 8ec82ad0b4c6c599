using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

public sealed unsafe class CrossEntropyTests
{
    // Loss = (max − target) + log Σ exp: float exp (a few ulp) summed in float chunks added in double;
    // log of the sum relative ~1e-7 → absolute ≲ 1e-6 on losses of O(1–10). 1e-5 relative keeps headroom.
    private const double LossTolerance = 1e-5;

    // Gradient entries are float exp(x − max) · (scale / Σ) with a few ulp each: 1e-5 relative, with the
    // RMS floor for the many tiny probabilities.
    private const double GradTolerance = 1e-5;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferencesWithIgnoredRows()
    {
        var rng = new Random(1);
        const int n = 4, v = 5;
        int[] targets = { 3, CrossEntropy.IgnoreIndex, 0, 4 };
        var logits = RandomArray(rng, n * v, 3);
        const double scale = 0.7;
        var ones = new double[n];
        Array.Fill(ones, scale);
        FiniteDifference.Check(p => CrossEntropyReference.Forward(p, targets, n, v), logits, ones, CrossEntropyReference.Backward(logits, targets, n, v, scale), "dlogits");
    }

    [Fact]
    public void ForwardBackwardMatchesReference()
    {
        var rng = new Random(2);
        foreach (int n in new[] { 0, 1, 5 })
        {
            for (int v = 1; v <= 70; v++)
            {
                Check(rng, n, v, 4);
            }
        }

        Check(rng, 8, 1024, 5);
        Check(rng, 8, 3000, 8); // several exp chunks
        Check(rng, 3, 500, 1000); // logits near ±1000: exp overflows without the max subtraction
    }

    [Fact]
    public void DlogitsMayAliasLogitsAndLossesDoNotDependOnGradients()
    {
        var rng = new Random(3);
        const int n = 6, v = 1500;
        var logitsD = RandomArray(rng, n * v, 5);
        int[] targets = { 7, CrossEntropy.IgnoreIndex, 1499, 0, 3, CrossEntropy.IgnoreIndex };
        var inPlace = ToFloat(logitsD);
        var logits = ToFloat(logitsD);
        var lossesInPlace = new float[n];
        var lossesNoGrad = new float[n];
        int counted;
        fixed (float* ip = inPlace, lp = logits, l1 = lossesInPlace, l2 = lossesNoGrad)
        fixed (int* tp = targets)
        {
            counted = CrossEntropy.ForwardBackward(ip, tp, l1, ip, n, v, 0.25f);
            CrossEntropy.ForwardBackward(lp, tp, l2, null, n, v, 0.25f);
        }

        Assert.Equal(4, counted);
        AssertClose(CrossEntropyReference.Backward(logitsD, targets, n, v, 0.25), inPlace, GradTolerance, "in-place dlogits");
        AssertBitIdentical(lossesNoGrad, lossesInPlace, "losses with and without gradients");
        AssertClose(CrossEntropyReference.Forward(logitsD, targets, n, v), lossesInPlace, LossTolerance, "losses");
    }

    [Fact]
    public void BadTargetNamesRowAndValue()
    {
        var logits = new float[3 * 4];
        var losses = new float[3];
        foreach (int bad in new[] { 4, -1, -101 })
        {
            int[] targets = { 0, bad, 2 };
            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Run(logits, targets, losses, 3, 4));
            Assert.Contains($"target {bad} in row 1", e.Message);
        }
    }

    private static int Run(float[] logits, int[] targets, float[] losses, int n, int v)
    {
        fixed (float* lp = logits, lossp = losses)
        fixed (int* tp = targets)
        {
            return CrossEntropy.ForwardBackward(lp, tp, lossp, null, n, v, 1);
        }
    }

    private static void Check(Random rng, int n, int v, double scale)
    {
        var logitsD = RandomArray(rng, n * v, scale);
        var targets = new int[n];
        int expectedCount = 0;
        for (int i = 0; i < n; i++)
        {
            targets[i] = i % 3 == 1 ? CrossEntropy.IgnoreIndex : rng.Next(v);
            expectedCount += targets[i] == CrossEntropy.IgnoreIndex ? 0 : 1;
        }

        var logits = ToFloat(logitsD);
        var losses = new float[n];
        var dlogits = new float[n * v];
        Array.Fill(dlogits, float.NaN); // every element must be written, ignored rows included
        int counted;
        fixed (float* lp = logits, lossp = losses, dp = dlogits)
        fixed (int* tp = targets)
        {
            counted = CrossEntropy.ForwardBackward(lp, tp, lossp, dp, n, v, 0.5f);
        }

        string at = $"N={n} V={v} scale={scale}";
        Assert.Equal(expectedCount, counted);
        AssertClose(CrossEntropyReference.Forward(logitsD, targets, n, v), losses, LossTolerance, $"losses {at}");
        AssertClose(CrossEntropyReference.Backward(logitsD, targets, n, v, 0.5), dlogits, GradTolerance, $"dlogits {at}");
    }
}
