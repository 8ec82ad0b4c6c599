using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// docs/mlnet-saving.md step for step: a fitted pipeline MapValueToKey → LoraTextClassification → MapKeyToValue
/// cannot go into one ML.NET zip, so it is saved as three parts (an ML.NET zip of the step before the LoRA step,
/// the adapter folder, an ML.NET zip of the step after it), reloaded in a new MLContext, chained again, and predicts
/// exactly what the fitted pipeline predicts.
/// </summary>
public sealed class PipelineSavingTests
{
    public sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";

        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void APipelineSavedAsTwoMLNetZipsAndAnAdapterFolderReloadsToTheSamePredictions()
    {
        string dir = Directory.CreateTempSubdirectory("lora-mlnet-save-").FullName;
        try
        {
            // Fit.
            var ml = new MLContext(seed: 1);
            IDataView train = ml.Data.LoadFromEnumerable(StoryRows.Topic(90, seed: 1));
            var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
                .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(TestSettings.Classification()))
                .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
            using var model = pipeline.Fit(train);

            // The whole chain does not go into one ML.NET zip.
            using (var stream = new MemoryStream())
            {
                var error = Assert.Throws<NotSupportedException>(() => ml.Model.Save(model, train.Schema, stream));
                Assert.Contains("SaveAdapter", error.Message);
            }

            // Save: the fitted steps around the LoRA step as ML.NET zips, the LoRA step as its adapter folder.
            ITransformer before = model.ElementAt(0);
            var classifier = (LoraTextClassificationTransformer)model.ElementAt(1);
            ITransformer after = model.ElementAt(2);
            DataViewSchema classifierInput = before.GetOutputSchema(train.Schema);
            ml.Model.Save(before, train.Schema, Path.Combine(dir, "before.zip"));
            classifier.SaveAdapter(Path.Combine(dir, "adapter"));
            ml.Model.Save(after, classifier.GetOutputSchema(classifierInput), Path.Combine(dir, "after.zip"));

            // Load into a new MLContext and chain the three parts again.
            var ml2 = new MLContext(seed: 1);
            ITransformer loadedBefore = ml2.Model.Load(Path.Combine(dir, "before.zip"), out DataViewSchema inputSchema);
            var loadedClassifier = LoraTextClassificationTransformer.Load(ml2, Path.Combine(dir, "adapter"));
            ITransformer loadedAfter = ml2.Model.Load(Path.Combine(dir, "after.zip"), out _);
            using var reloaded = new TransformerChain<ITransformer>(loadedBefore, loadedClassifier, loadedAfter);

            Assert.Equal(train.Schema.Select(c => (c.Name, c.Type)), inputSchema.Select(c => (c.Name, c.Type)));
            IDataView test = ml.Data.LoadFromEnumerable(StoryRows.Topic(60, seed: 2));
            var expected = model.Transform(test);
            var actual = reloaded.Transform(test);
            Assert.Equal(expected.GetColumn<string>("PredictedLabel"), actual.GetColumn<string>("PredictedLabel"));
            Assert.Equal(expected.GetColumn<float[]>("Score"), actual.GetColumn<float[]>("Score"));
            Assert.Equal(StoryRows.Topics, actual.GetColumn<string>("PredictedLabel").Distinct().Order());

            var metrics = ml.MulticlassClassification.Evaluate(expected);
            var reloadedMetrics = ml2.MulticlassClassification.Evaluate(actual);
            Assert.Equal(metrics.MicroAccuracy, reloadedMetrics.MicroAccuracy);
            Assert.Equal(metrics.LogLoss, reloadedMetrics.LogLoss);

            var engine = ml2.Model.CreatePredictionEngine<TopicRow, Prediction>(reloaded);
            var originalEngine = ml.Model.CreatePredictionEngine<TopicRow, Prediction>(model);
            foreach (var row in StoryRows.Topic(6, seed: 7))
            {
                var input = new TopicRow { Sentence1 = row.Sentence1 };
                var prediction = engine.Predict(input);
                var original = originalEngine.Predict(input);
                Assert.Equal(original.PredictedLabel, prediction.PredictedLabel);
                Assert.Equal(original.Score, prediction.Score);
            }

            // Disposing the chain disposes the LoRA transformer in it, which frees its model.
            reloaded.Dispose();
            Assert.Throws<ObjectDisposedException>(() => loadedClassifier.Transform(loadedBefore.Transform(test)).GetColumn<float[]>("Score").ToArray());
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
