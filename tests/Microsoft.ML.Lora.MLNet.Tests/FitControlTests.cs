using System.Reflection;
using Microsoft.ML.Data;
using Microsoft.ML.Lora.Training;
using Microsoft.ML.Lora.TorchSharp;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>What Fit takes from the MLContext and the options: the seed, cancellation and the device.</summary>
public sealed class FitControlTests
{
    [Fact]
    public void TheSameSeedGivesTheSameModelAndAnotherSeedAnother()
    {
        var (lossesA, scoresA) = FitMood(seed: 7);
        var (lossesB, scoresB) = FitMood(seed: 7);
        var (lossesC, scoresC) = FitMood(seed: 8);

        Assert.Equal(lossesA, lossesB);
        Assert.Equal(scoresA, scoresB);
        Assert.NotEqual(lossesA, lossesC);
        Assert.NotEqual(scoresA, scoresC);
    }

    [Fact]
    public void MLNetsCancelExecutionStopsFitWithNothingWritten()
    {
        // MLContext.CancelExecution is internal to ML.NET (AutoML calls it); the trainers honour what it sets.
        var ml = new MLContext(seed: 1);
        string temp = Directory.CreateTempSubdirectory("lora-mlnet-cancel-").FullName;
        ml.TempFilePath = temp;
        var cancel = typeof(MLContext).GetMethod("CancelExecution", BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public)!;
        var options = TestSettings.Regression();
        options.Progress = new RecordingProgress<TrainingProgress>(p =>
        {
            if (p.Step == 3)
            {
                cancel.Invoke(ml, null);
            }
        });
        var before = ModelFiles();

        Assert.ThrowsAny<OperationCanceledException>(() => ml.Regression.Trainers.LoraTextRegression(options).Fit(ml.Data.LoadFromEnumerable(StoryRows.Mood(90, seed: 1))));

        Assert.Equal(3, ((RecordingProgress<TrainingProgress>)options.Progress).Reports.Count);
        Assert.Empty(Directory.EnumerateFileSystemEntries(temp));
        Assert.Equal(before, ModelFiles());
        Directory.Delete(temp);
    }

    [Fact]
    public void TheOptionsCancellationTokenStopsFit()
    {
        var ml = new MLContext(seed: 1);
        using var source = new CancellationTokenSource();
        var options = TestSettings.Classification();
        options.CancellationToken = source.Token;
        var progress = new RecordingProgress<TrainingProgress>(p =>
        {
            if (p.Step == 2)
            {
                source.Cancel();
            }
        });
        options.Progress = progress;
        var data = ml.Data.LoadFromEnumerable(StoryRows.Topic(90, seed: 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);

        Assert.ThrowsAny<OperationCanceledException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed));
        Assert.Equal(2, progress.Reports.Count);
    }

    [Fact]
    public void AGpuThatCannotBeUsedIsAClearErrorOrWithFallbackToCpuAWarningAndTheCpu()
    {
        // No CUDA package or device here (CI has no GPU): "cuda" is unavailable.
        var ml = new MLContext(seed: 1);
        var log = TestSettings.CaptureLog(ml);
        var data = ml.Data.LoadFromEnumerable(StoryRows.Mood(8, seed: 1));
        var options = TestSettings.Regression();
        options.MaxSteps = 1;
        options.Device = "cuda";
        Assert.Throws<TorchBackendUnavailableException>(() => ml.Regression.Trainers.LoraTextRegression(options).Fit(data));

        options.FallbackToCpu = true;
        using var fallback = ml.Regression.Trainers.LoraTextRegression(options).Fit(data);
        Assert.Equal("native (cpu)", fallback.TrainingMetrics!.Device);
        Assert.Contains(log, e => e.Kind == ChannelMessageKind.Warning && e.RawMessage.StartsWith("Device 'cuda' is not available, so the model runs on the CPU (FallbackToCpu)", StringComparison.Ordinal));

        // Without a device in the options, ML.NET's own settings decide, as for its TorchSharp trainers.
        var context = new MLContext(seed: 1) { GpuDeviceId = 0, FallbackToCpu = true };
        var contextLog = TestSettings.CaptureLog(context);
        options.Device = null;
        options.FallbackToCpu = null;
        using var fromContext = context.Regression.Trainers.LoraTextRegression(options).Fit(context.Data.LoadFromEnumerable(StoryRows.Mood(8, seed: 1)));
        Assert.Contains(contextLog, e => e.Kind == ChannelMessageKind.Warning && e.RawMessage.StartsWith("Device 'cuda:0' is not available", StringComparison.Ordinal));

        options.Device = "tpu";
        var unknown = Assert.Throws<ArgumentException>(() => ml.Regression.Trainers.LoraTextRegression(options).Fit(data));
        Assert.StartsWith("LoraTextRegressionTrainer.Options.Device = 'tpu' is invalid", unknown.Message);
    }

    private static (double[] Losses, float[] Scores) FitMood(int seed)
    {
        var ml = new MLContext(seed);
        var options = TestSettings.Regression();
        options.MaxEpochs = 2;
        options.Dropout = 0.1;
        using var regressor = ml.Regression.Trainers.LoraTextRegression(options).Fit(ml.Data.LoadFromEnumerable(StoryRows.Mood(48, seed: 1)));
        return ([.. regressor.TrainingMetrics!.StepLosses], [.. regressor.Transform(ml.Data.LoadFromEnumerable(StoryRows.Mood(8, seed: 2))).GetColumn<float>("Score")]);
    }

    private static string[] ModelFiles() =>
        [.. Directory.GetFiles(Examples.TinyStories.Path).Order().Select(f => $"{Path.GetFileName(f)} {new FileInfo(f).Length} {File.GetLastWriteTimeUtc(f):O}")];
}
