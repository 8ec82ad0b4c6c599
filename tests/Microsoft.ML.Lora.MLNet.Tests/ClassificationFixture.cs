using Microsoft.ML.Data;
using Microsoft.ML.Lora.Training;
using Microsoft.ML.Transforms;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// One ML.NET pipeline fitted on the real TinyStories model, from TSV files: LoadFromTextFile →
/// MapValueToKey("Label") → LoraTextClassification (with a ValidationSet) → MapKeyToValue("PredictedLabel"),
/// on the three-topic task; shared by the classification tests.
/// </summary>
public sealed class ClassificationFixture : IDisposable
{
    public const int TrainRows = 90, ValidationRows = 30, TestRows = 60;

    public ClassificationFixture()
    {
        Root = Directory.CreateTempSubdirectory("lora-mlnet-cls-").FullName;
        Log = TestSettings.CaptureLog(Ml);
        Train = Tsv("train.tsv", StoryRows.Topic(TrainRows, seed: 1));
        var validation = Tsv("validation.tsv", StoryRows.Topic(ValidationRows, seed: 3));
        Test = Tsv("test.tsv", StoryRows.Topic(TestRows, seed: 2));

        // The ValidationSet goes in with the columns the trainer sees: the label mapped to keys as in the pipeline.
        KeyedValidation = Ml.Transforms.Conversion.MapValueToKey("Label").Fit(Train).Transform(validation);
        Options = TestSettings.Classification();
        Options.ValidationSet = KeyedValidation;
        Options.Progress = Progress;
        var pipeline = Ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(Ml.MulticlassClassification.Trainers.LoraTextClassification(Options))
            .Append(Ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
        Model = pipeline.Fit(Train);
    }

    public MLContext Ml { get; } = new(seed: 1);

    public string Root { get; }

    public List<LoggingEventArgs> Log { get; }

    public LoraTextClassificationTrainer.Options Options { get; }

    public IDataView Train { get; }

    public IDataView KeyedValidation { get; }

    public IDataView Test { get; }

    public RecordingProgress<TrainingProgress> Progress { get; } = new();

    public TransformerChain<KeyToValueMappingTransformer> Model { get; }

    /// <summary>The LoRA transformer inside the fitted chain.</summary>
    public LoraTextClassificationTransformer Classifier => (LoraTextClassificationTransformer)Model.ElementAt(1);

    public void Dispose()
    {
        Classifier.Dispose();
        Directory.Delete(Root, recursive: true);
    }

    private IDataView Tsv(string name, TopicRow[] rows)
    {
        string path = Path.Combine(Root, name);
        File.WriteAllLines(path, rows.Select(r => $"{r.Label}\t{r.Sentence1}").Prepend("Label\tSentence1"));
        return Ml.Data.LoadFromTextFile<TsvRow>(path, separatorChar: '\t', hasHeader: true);
    }

    /// <summary>A TSV line: the label, then the sentence.</summary>
    public sealed class TsvRow
    {
        [LoadColumn(0)]
        public string Label { get; set; } = "";

        [LoadColumn(1)]
        public string Sentence1 { get; set; } = "";
    }
}
