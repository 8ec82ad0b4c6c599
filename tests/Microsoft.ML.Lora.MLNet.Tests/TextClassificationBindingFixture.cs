using Microsoft.ML.Data;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Tests.Pipeline;
using Microsoft.ML.Lora.Training;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// One ML.NET pipeline fitted on a tiny random model: MapValueToKey("Label") → LoraTextClassification →
/// MapKeyToValue("PredictedLabel"), on rows from LoadFromEnumerable; shared by the classification tests.
/// </summary>
public sealed class TextClassificationBindingFixture : IDisposable
{
    public const int TrainRows = 150;
    public const int TestRows = 45;

    public TextClassificationBindingFixture()
    {
        Root = Directory.CreateTempSubdirectory("lora-mlnet-cls-").FullName;
        Options = new LoraTextClassificationOptions
        {
            ModelPath = PipelineTestModels.CausalLm(Path.Combine(Root, "model")),
            Lora = new LoraOptions { Rank = 8 },
            Training = new TrainingOptions { LearningRate = 5e-3, BatchSize = 16, MaxSteps = 120, WarmupSteps = 3, Seed = 1 },
            PredictionBatchSize = 16,
        };
        Train = Ml.Data.LoadFromEnumerable(TopicRows.Make(TrainRows, seed: 1));
        Test = Ml.Data.LoadFromEnumerable(TopicRows.Make(TestRows, seed: 1001));
        var pipeline = Ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(Ml.MulticlassClassification.Trainers.LoraTextClassification(Options, Progress))
            .Append(Ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        Model = pipeline.Fit(Train);
    }

    public MLContext Ml { get; } = new(seed: 1);

    public string Root { get; }

    public LoraTextClassificationOptions Options { get; }

    public IDataView Train { get; }

    public IDataView Test { get; }

    public RecordingProgress<TrainingProgress> Progress { get; } = new();

    public TransformerChain<KeyToValueMappingTransformer> Model { get; }

    /// <summary>The LoRA transformer inside the fitted chain.</summary>
    public LoraTextClassificationPredictionTransformer Classifier => (LoraTextClassificationPredictionTransformer)Model.ElementAt(1);

    public void Dispose()
    {
        Classifier.Dispose();
        Directory.Delete(Root, recursive: true);
    }
}
