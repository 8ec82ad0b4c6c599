using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>Defaults (DESIGN.md §5) and validation messages that name the option and the value.</summary>
public sealed class TrainingOptionsTests
{
    public static TheoryData<string, Func<TrainingOptions, TrainingOptions>, string> Invalid() => new()
    {
        { "LearningRate", o => o with { LearningRate = 0 }, "= 0 " },
        { "LearningRate", o => o with { LearningRate = double.PositiveInfinity }, "= Infinity" },
        { "WeightDecay", o => o with { WeightDecay = -0.1 }, "= -0.1 " },
        { "Beta1", o => o with { Beta1 = 1.0 }, "= 1 " },
        { "Beta2", o => o with { Beta2 = double.NaN }, "= NaN" },
        { "Epsilon", o => o with { Epsilon = 0 }, "= 0 " },
        { "Epochs", o => o with { Epochs = 0 }, "= 0 " },
        { "MaxSteps", o => o with { MaxSteps = 0 }, "= 0 " },
        { "BatchSize", o => o with { BatchSize = -1 }, "= -1 " },
        { "GradientAccumulationSteps", o => o with { GradientAccumulationSteps = 0 }, "= 0 " },
        { "MaxSequenceLength", o => o with { MaxSequenceLength = 1 }, "= 1 " },
        { "WarmupRatio", o => o with { WarmupRatio = 1.5 }, "= 1.5 " },
        { "WarmupSteps", o => o with { WarmupSteps = -2 }, "= -2 " },
        { "Schedule", o => o with { Schedule = (LearningRateScheduleKind)9 }, "= 9 " },
        { "MaxGradNorm", o => o with { MaxGradNorm = -1 }, "= -1 " },
        { "ValidationFraction", o => o with { ValidationFraction = 1.0 }, "= 1 " },
        { "EvalEverySteps", o => o with { EvalEverySteps = -5 }, "= -5 " },
        { "CheckpointEverySteps", o => o with { CheckpointEverySteps = -1 }, "= -1 " },
        { "CheckpointDirectory", o => o with { CheckpointEverySteps = 10 }, "= null" },
        { "MetricsPath", o => o with { MetricsPath = " " }, "= ' '" },
    };

    [Fact]
    public void DefaultsAreTheDocumentedOnesAndValid()
    {
        var o = new TrainingOptions();
        o.Validate();
        Assert.Equal(2e-4, o.LearningRate);
        Assert.Equal(0.0, o.WeightDecay);
        Assert.Equal((0.9, 0.999, 1e-8), (o.Beta1, o.Beta2, o.Epsilon));
        Assert.Equal((1, (int?)null, 4, 1, 1024), (o.Epochs, o.MaxSteps, o.BatchSize, o.GradientAccumulationSteps, o.MaxSequenceLength));
        Assert.Equal((0.03, (int?)null, LearningRateScheduleKind.Linear, 1.0), (o.WarmupRatio, o.WarmupSteps, o.Schedule, o.MaxGradNorm));
        Assert.Equal((42, true, 0.0, 0, 0), (o.Seed, o.Shuffle, o.ValidationFraction, o.EvalEverySteps, o.CheckpointEverySteps));
        Assert.Null(o.CheckpointDirectory);
        Assert.Null(o.MetricsPath);
    }

    [Theory]
    [MemberData(nameof(Invalid))]
    public void InvalidValueIsNamedWithItsValue(string option, Func<TrainingOptions, TrainingOptions> change, string shown)
    {
        var e = Assert.Throws<ArgumentException>(() => change(new TrainingOptions()).Validate());
        Assert.Equal(option, e.ParamName);
        Assert.Contains($"TrainingOptions.{option} {shown}", e.Message);
    }

    [Fact]
    public void TrainerValidatesItsOptions()
    {
        using var model = TrainingTestData.Model();
        var e = Assert.Throws<ArgumentException>(() => new Trainer(model, new TrainingOptions { BatchSize = 0 }));
        Assert.Equal("BatchSize", e.ParamName);
    }

    [Fact]
    public void BoundaryValuesAreAccepted()
    {
        new TrainingOptions { Beta1 = 0, WarmupRatio = 1, MaxGradNorm = 0, MaxSequenceLength = 2, WarmupSteps = 0, CheckpointEverySteps = 1, CheckpointDirectory = "ckpt" }.Validate();
    }
}
