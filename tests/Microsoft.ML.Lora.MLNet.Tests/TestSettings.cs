using Microsoft.ML.Lora.Examples;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// The training settings of the tests, on the real TinyStories model: rate 5e-3 (LoRA on a 656K model takes a
/// higher rate than the 2e-4 default for large models), 20 epochs of batches of 16. On the story tasks this
/// fits in about a second per run here (2 cores) and was measured over seeds in each test's margins.
/// </summary>
internal static class TestSettings
{
    public const double LearningRate = 5e-3;
    public const int Epochs = 20;
    public const int BatchSize = 16;

    public static LoraTextClassificationTrainer.Options Classification() => new()
    {
        ModelPath = TinyStories.Path,
        LearningRate = LearningRate,
        MaxEpochs = Epochs,
        BatchSize = BatchSize,
        PredictionBatchSize = 16,
    };

    public static LoraTextRegressionTrainer.Options Regression() => new()
    {
        ModelPath = TinyStories.Path,
        LearningRate = LearningRate,
        MaxEpochs = Epochs,
        BatchSize = BatchSize,
        PredictionBatchSize = 16,
    };

    /// <summary>Collects MLContext.Log (raised on the training thread).</summary>
    public static List<LoggingEventArgs> CaptureLog(MLContext ml)
    {
        var lines = new List<LoggingEventArgs>();
        ml.Log += (_, e) =>
        {
            lock (lines)
            {
                lines.Add(e);
            }
        };
        return lines;
    }
}
