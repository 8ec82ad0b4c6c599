using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>One LoRA classification run (two topics, int labels) on a tiny random model, shared by the classification pipeline tests.</summary>
public sealed class ClassificationPipelineFixture : IDisposable
{
    public const int TrainRows = 160;
    public const int TestRows = 40;

    public ClassificationPipelineFixture()
        : this(dataSeed: 1, trainingSeed: 1)
    {
    }

    internal ClassificationPipelineFixture(int dataSeed, int trainingSeed)
    {
        Root = Directory.CreateTempSubdirectory("lora-pipeline-cls-").FullName;
        ModelPath = PipelineTestModels.CausalLm(Path.Combine(Root, "model"));
        Options = new LoraTextClassificationOptions
        {
            ModelPath = ModelPath,
            Lora = new LoraOptions { Rank = 8 },
            Training = new TrainingOptions { LearningRate = 3e-3, BatchSize = 16, MaxSteps = 120, WarmupSteps = 3, Seed = trainingSeed },
            PredictionBatchSize = 16,
        };
        var (texts, labels) = SyntheticTopics.Rows(TrainRows, 2, dataSeed);
        Train = TextTable.FromColumns(("Text", texts), ("Label", labels));
        var (testTexts, testLabels) = SyntheticTopics.Rows(TestRows, 2, dataSeed + 1000);
        Test = TextTable.FromColumns(("Text", testTexts), ("Label", testLabels));
        Progress = new RecordingProgress<TrainingProgress>();
        Transformer = new LoraTextClassificationEstimator(Options).Fit(Train, Progress);
    }

    public string Root { get; }

    public string ModelPath { get; }

    public LoraTextClassificationOptions Options { get; }

    public TextTable Train { get; }

    public TextTable Test { get; }

    public RecordingProgress<TrainingProgress> Progress { get; }

    public LoraTextClassificationTransformer Transformer { get; }

    /// <summary>Share of <paramref name="table"/>'s rows whose PredictedLabel equals Label, after Transform.</summary>
    public static double Accuracy(LoraTextClassificationTransformer transformer, TextTable table)
    {
        var output = transformer.Transform(table);
        var truth = output.GetColumn<int>("Label");
        var predicted = output.GetColumn<int>("PredictedLabel");
        return (double)truth.Zip(predicted).Count(p => p.First == p.Second) / truth.Count;
    }

    public void Dispose()
    {
        Transformer.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
