using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Exact rates at the step boundaries (transformers' formulas, W = 4 warmup of N = 20 steps).</summary>
public sealed class LearningRateScheduleTests
{
    // The formulas are evaluated in double; 1e-18 absolute only absorbs the last bit of cos(π/2) ≠ 0.
    private const double Exact = 1e-18;

    [Theory]
    [InlineData(LearningRateScheduleKind.Constant)]
    [InlineData(LearningRateScheduleKind.Linear)]
    [InlineData(LearningRateScheduleKind.Cosine)]
    public void WarmupRisesLinearlyFromZeroToTheBaseRate(LearningRateScheduleKind kind)
    {
        var s = new LearningRateSchedule(kind, 1e-3, 4, 20);
        Assert.Equal(0.0, s.At(0));
        Assert.Equal(0.25e-3, s.At(1), Exact);
        Assert.Equal(0.5e-3, s.At(2), Exact);
        Assert.Equal(0.75e-3, s.At(3), Exact);
        Assert.Equal(1e-3, s.At(4), Exact);
    }

    [Fact]
    public void ConstantStaysAtTheBaseRate()
    {
        var s = new LearningRateSchedule(LearningRateScheduleKind.Constant, 1e-3, 4, 20);
        Assert.All(Enumerable.Range(4, 20), i => Assert.Equal(1e-3, s.At(i)));
    }

    [Fact]
    public void LinearFallsToZeroAtTheEnd()
    {
        // lr·(N − i)/(N − W): 16 decay steps.
        var s = new LearningRateSchedule(LearningRateScheduleKind.Linear, 1e-3, 4, 20);
        Assert.Equal(1e-3 * 12 / 16, s.At(8), Exact);
        Assert.Equal(0.5e-3, s.At(12), Exact);
        Assert.Equal(1e-3 / 16, s.At(19), Exact);
        Assert.Equal(0.0, s.At(20));
        Assert.Equal(0.0, s.At(25));
    }

    [Fact]
    public void CosineFallsAsHalfACosine()
    {
        var s = new LearningRateSchedule(LearningRateScheduleKind.Cosine, 1e-3, 4, 20);
        Assert.Equal(0.5e-3 * (1 + Math.Cos(Math.PI / 4)), s.At(8), Exact);
        Assert.Equal(0.5e-3, s.At(12), Exact);
        Assert.Equal(0.5e-3 * (1 + Math.Cos(Math.PI * 15 / 16)), s.At(19), Exact);
        Assert.Equal(0.0, s.At(20), Exact);
        Assert.Equal(0.0, s.At(40), Exact);
    }

    [Fact]
    public void NoWarmupStartsAtTheBaseRateAndAllWarmupNeverDecays()
    {
        Assert.Equal(1e-3, new LearningRateSchedule(LearningRateScheduleKind.Linear, 1e-3, 0, 10).At(0));
        var all = new LearningRateSchedule(LearningRateScheduleKind.Linear, 1e-3, 10, 10);
        Assert.Equal(0.9e-3, all.At(9), Exact);
    }

    [Fact]
    public void InvalidArgumentsAreNamed()
    {
        Assert.Contains("warmup steps 11", Assert.Throws<ArgumentException>(() => new LearningRateSchedule(LearningRateScheduleKind.Linear, 1e-3, 11, 10)).Message);
        Assert.Contains("total steps 0", Assert.Throws<ArgumentException>(() => new LearningRateSchedule(LearningRateScheduleKind.Linear, 1e-3, 0, 0)).Message);
        Assert.Contains("base learning rate NaN", Assert.Throws<ArgumentException>(() => new LearningRateSchedule(LearningRateScheduleKind.Linear, double.NaN, 0, 1)).Message);
        Assert.Throws<ArgumentException>(() => new LearningRateSchedule((LearningRateScheduleKind)7, 1e-3, 0, 1));
    }
}
