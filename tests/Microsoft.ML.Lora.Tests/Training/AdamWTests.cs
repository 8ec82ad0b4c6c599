using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>AdamW against hand-computed steps and against its float64 reference twin.</summary>
public sealed class AdamWTests
{
    // F32 AdamW vs the float64 reference after 10 steps with lr 1e-2: each step's update is lr·(m̂/√v̂)
    // with m̂/√v̂ = O(1) computed to float precision (~1e-7 relative), so the parameters differ by
    // ≈ 10·1e-2·1e-7 plus the float rounding of p itself (~1e-7 for |p| ≤ 2); 2e-6 absolute covers it
    // with 5× headroom while a wrong bias correction or decay (errors ≥ 1e-3) cannot pass.
    private const double VsReferenceTolerance = 2e-6;

    // Hand-computed (see comments) in double; float arithmetic keeps ~7 significant digits.
    private const double HandTolerance = 1e-6;

    [Fact]
    public void TwoStepsMatchHandComputation()
    {
        // p₀ = 1, lr = 0.1, λ = 0.01, β = (0.9, 0.999), ε = 1e-8; g₁ = 0.5, g₂ = −1.
        // Step 1: m = 0.05, v = 0.00025, m̂ = 0.5, v̂ = 0.25;
        //   p₁ = 1·(1 − 0.001) − 0.1·0.5/(0.5 + 1e-8) = 0.899000002.
        // Step 2: m = 0.045 − 0.1 = −0.055, v = 0.00024975 + 0.001 = 0.00124975,
        //   m̂ = −0.055/0.19 = −0.289473684, v̂ = 0.00124975/0.001999 = 0.625187594, √v̂ = 0.790688051;
        //   p₂ = 0.899000002·0.999 + 0.1·0.289473684/0.790688061 = 0.898101002 + 0.036610352 = 0.934711354.
        double[] p = [1.0], m = [0.0], v = [0.0];
        AdamWReference.Update(p, [0.5], m, v, 1, 0.1, 0.9, 0.999, 1e-8, 0.01);
        Assert.Equal(0.899000002, p[0], 1e-12);
        AdamWReference.Update(p, [-1.0], m, v, 2, 0.1, 0.9, 0.999, 1e-8, 0.01);
        Assert.Equal(-0.055, m[0], 1e-15);
        Assert.Equal(0.00124975, v[0], 1e-15);
        Assert.Equal(0.9347113542, p[0], 1e-9);

        using var param = Trainable([1f]);
        using var adam = new AdamW([param], 0.9, 0.999, 1e-8, 0.01);
        param.Grad!.AsF32()[0] = 0.5f;
        adam.Step(0.1);
        Assert.Equal(0.899000002, param.Value.AsF32()[0], HandTolerance);
        param.Grad!.AsF32()[0] = -1f;
        adam.Step(0.1);
        Assert.Equal(2, adam.StepCount);
        Assert.Equal(-0.055, adam.ExpAvg(0).AsF32()[0], HandTolerance);
        Assert.Equal(0.00124975, adam.ExpAvgSq(0).AsF32()[0], HandTolerance * 1e-3);
        Assert.Equal(0.9347113542, param.Value.AsF32()[0], HandTolerance);
    }

    [Fact]
    public void FirstStepMovesEveryWeightByTheLearningRateInTheGradientsDirection()
    {
        // m̂₁ = g and √v̂₁ = |g|, so the first update is lr·sign(g) whatever the gradient's scale.
        using var param = Trainable([0f, 0f, 0f]);
        using var adam = new AdamW([param]);
        new float[] { 1e-3f, -50f, 3f }.CopyTo(param.Grad!.AsF32());
        adam.Step(0.01);
        Assert.Equal([-0.01, 0.01, -0.01], param.Value.ToFloatArray().Select(x => (double)x), new ToleranceComparer(1e-7));
    }

    [Fact]
    public void WeightDecayIsDecoupledFromTheGradient()
    {
        // With g = 0 the moments stay 0 and only the decay acts: p ← p·(1 − lr·λ) exactly. Adam with L2
        // in the gradient would instead take an Adam-normalised step of ≈ lr toward 0.
        using var param = Trainable([2f, -4f]);
        using var adam = new AdamW([param], weightDecay: 0.1);
        adam.Step(0.5);
        Assert.Equal([2f * 0.95f, -4f * 0.95f], param.Value.ToFloatArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(33)]
    [InlineData(257)]
    public void TenStepsMatchTheFloat64Reference(int n)
    {
        var random = new Random(n + 1);
        float[] p0 = Enumerable.Range(0, n).Select(_ => (float)((random.NextDouble() * 2) - 1)).ToArray();
        using var param = Trainable(p0);
        using var adam = new AdamW([param], 0.9, 0.99, 1e-8, 0.05);
        double[] p = p0.Select(x => (double)x).ToArray(), m = new double[n], v = new double[n];
        for (int t = 1; t <= 10; t++)
        {
            // Gradients spanning 1e-4 … 1e1 in magnitude, both signs.
            float[] g = Enumerable.Range(0, n).Select(_ => (float)(((random.NextDouble() * 2) - 1) * Math.Pow(10, random.Next(-4, 2)))).ToArray();
            g.CopyTo(param.Grad!.AsF32());
            adam.Step(1e-2);
            AdamWReference.Update(p, g.Select(x => (double)x).ToArray(), m, v, t, 1e-2, 0.9, 0.99, 1e-8, 0.05);
        }

        float[] actual = param.Value.ToFloatArray();
        for (int i = 0; i < n; i++)
        {
            Assert.True(Math.Abs(actual[i] - p[i]) <= VsReferenceTolerance, $"element {i}: {actual[i]} vs reference {p[i]}");
        }
    }

    [Fact]
    public void FrozenParameterIsRejected()
    {
        using var frozen = new Parameter("frozen.weight", Tensor.Zeros(DType.F32, 2));
        var e = Assert.Throws<ArgumentException>(() => new AdamW([frozen]));
        Assert.Contains("'frozen.weight' is not trainable", e.Message);
    }

    private static Parameter Trainable(float[] values)
    {
        var p = new Parameter("w", Tensor.FromF32(values, values.Length)) { Trainable = true };
        return p;
    }

    private sealed class ToleranceComparer(double tolerance) : IEqualityComparer<double>
    {
        public bool Equals(double x, double y) => Math.Abs(x - y) <= tolerance;

        public int GetHashCode(double obj) => 0;
    }
}
