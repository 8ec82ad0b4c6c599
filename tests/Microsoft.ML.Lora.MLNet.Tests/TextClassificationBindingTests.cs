using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// LoRA text classification as an ML.NET multiclass trainer: the fitted pipeline transforms, ML.NET's
/// evaluator reads its output, PredictionEngine predicts, and the adapter round-trips.
/// </summary>
public sealed class TextClassificationBindingTests(TextClassificationBindingFixture fixture) : IClassFixture<TextClassificationBindingFixture>
{
    // Three balanced classes: chance accuracy is 1/3. Training seeds 1-4 gave 0.867-0.933 on the 45 held-out
    // rows (120 steps), so 0.8 (chance + 0.47) holds with room and still fails a classifier that learned
    // nothing, or whose Score slots are out of step with the label keys (which scores near chance).
    private const double MinAccuracy = 0.8;

    // A row scored alone versus in a right-padded batch of 16: the pooled logits differ by float rounding only.
    private const float SingleVersusBatchTolerance = 1e-4f;

    // Merging sums W + s·B·A once instead of per call: float rounding only, far below the probability scale.
    private const float MergeTolerance = 1e-4f;

    public sealed class Prediction
    {
        public string PredictedLabel { get; set; } = "";

        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void FittedPipelineAddsKeyMappedPredictedLabelAndScore()
    {
        Assert.Equal(fixture.Options.Training.MaxSteps, fixture.Progress.Reports.Count);
        var output = fixture.Model.Transform(fixture.Test);

        var score = output.Schema["Score"];
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), score.Type);
        Assert.Equal(TopicRows.Classes, SlotNames(score));
        Assert.Equal(TextDataViewType.Instance, output.Schema["PredictedLabel"].Type);

        var labelKeys = output.Schema["Label"];
        Assert.Equal(new KeyDataViewType(typeof(uint), 3), labelKeys.Type);
        var predicted = output.GetColumn<string>("PredictedLabel").ToArray();
        var scores = output.GetColumn<float[]>("Score").ToArray();
        Assert.Equal(TextClassificationBindingFixture.TestRows, predicted.Length);
        for (int i = 0; i < predicted.Length; i++)
        {
            Assert.Equal(1f, scores[i].Sum(), 1e-4f);
            Assert.Equal(TopicRows.Classes[Array.IndexOf(scores[i], scores[i].Max())], predicted[i]);
        }
    }

    [Fact]
    public void OutputColumnsCarryMLNetsMulticlassScoreAnnotations()
    {
        var keyed = fixture.Model.ElementAt(0).Transform(fixture.Test);
        var schema = fixture.Classifier.GetOutputSchema(keyed.Schema);

        // What ML.NET's own multiclass scorers write: the score column set's kind and each column's role.
        Assert.Equal("MulticlassClassification", Text(schema["Score"], "ScoreColumnKind"));
        Assert.Equal("Score", Text(schema["Score"], "ScoreValueKind"));
        Assert.Equal("MulticlassClassification", Text(schema["PredictedLabel"], "ScoreColumnKind"));
        Assert.Equal("PredictedLabel", Text(schema["PredictedLabel"], "ScoreValueKind"));
        Assert.Equal(new KeyDataViewType(typeof(uint), 3), schema["PredictedLabel"].Type);
        Assert.Equal(TopicRows.Classes, KeyValues(schema["PredictedLabel"]));
        Assert.Equal(schema.Select(c => c.Name), fixture.Classifier.Transform(keyed).Schema.Select(c => c.Name));
    }

    private static string Text(DataViewSchema.Column column, string kind)
    {
        ReadOnlyMemory<char> value = default;
        column.Annotations.GetValue(kind, ref value);
        return value.ToString();
    }

    [Fact]
    public void EvaluateReadsTheOutputAndAgreesWithTheScores()
    {
        var output = fixture.Model.Transform(fixture.Test);
        var metrics = fixture.Ml.MulticlassClassification.Evaluate(output);

        // Accuracy and log-loss recomputed from the Score vectors and the label keys (key k = class k − 1).
        var keys = output.GetColumn<uint>("Label").ToArray();
        var scores = output.GetColumn<float[]>("Score").ToArray();
        double correct = 0, logLoss = 0;
        for (int i = 0; i < keys.Length; i++)
        {
            int truth = (int)keys[i] - 1;
            correct += Array.IndexOf(scores[i], scores[i].Max()) == truth ? 1 : 0;
            logLoss += -Math.Log(Math.Max(scores[i][truth], 1e-15));
        }

        Assert.Equal(correct / keys.Length, metrics.MicroAccuracy, 1e-12);
        Assert.Equal(logLoss / keys.Length, metrics.LogLoss, 1e-5);
        Assert.Equal(3, metrics.ConfusionMatrix.NumberOfClasses);
        Assert.True(metrics.MicroAccuracy >= MinAccuracy, $"held-out accuracy {metrics.MicroAccuracy:F3} (chance 0.333, required {MinAccuracy})");
        Assert.True(metrics.MacroAccuracy >= MinAccuracy, $"held-out macro accuracy {metrics.MacroAccuracy:F3}");
    }

    [Fact]
    public void PredictionEnginePredictsOneRowAsTheBatchedViewDoes()
    {
        var engine = fixture.Ml.Model.CreatePredictionEngine<TopicRow, Prediction>(fixture.Model);
        var rows = TopicRows.Make(5, seed: 7);
        var view = fixture.Model.Transform(fixture.Ml.Data.LoadFromEnumerable(rows));
        var batchLabels = view.GetColumn<string>("PredictedLabel").ToArray();
        var batchScores = view.GetColumn<float[]>("Score").ToArray();

        for (int i = 0; i < rows.Length; i++)
        {
            var prediction = engine.Predict(new TopicRow { Text = rows[i].Text });
            Assert.Equal(batchLabels[i], prediction.PredictedLabel);
            Assert.Equal(3, prediction.Score.Length);
            for (int c = 0; c < 3; c++)
            {
                Assert.Equal(batchScores[i][c], prediction.Score[c], SingleVersusBatchTolerance);
            }
        }
    }

    public sealed class TextOnly
    {
        public string Text { get; set; } = "";
    }

    public sealed class KeyPrediction
    {
        [KeyType(3)]
        public uint PredictedLabel { get; set; }

        public float[] Score { get; set; } = [];
    }

    [Fact]
    public void PredictionEngineOfTheClassifierAloneNeedsOnlyTheTextColumn()
    {
        // Without the label's MapValueToKey in front, an input class with Text alone is enough.
        var engine = fixture.Ml.Model.CreatePredictionEngine<TextOnly, KeyPrediction>(fixture.Classifier);
        var texts = TopicRows.Make(4, seed: 11).Select(r => r.Text).ToArray();
        var expected = fixture.Classifier.Model.PredictScores(texts);

        Assert.Equal(TopicRows.Classes, KeyValues(engine.OutputSchema["PredictedLabel"]));
        for (int i = 0; i < texts.Length; i++)
        {
            var prediction = engine.Predict(new TextOnly { Text = texts[i] });
            Assert.Equal((uint)Array.IndexOf(expected[i], expected[i].Max()) + 1, prediction.PredictedLabel);
            Assert.Equal(expected[i].Length, prediction.Score.Length);
            for (int c = 0; c < expected[i].Length; c++)
            {
                Assert.Equal(expected[i][c], prediction.Score[c], SingleVersusBatchTolerance);
            }
        }
    }

    [Fact]
    public void TransformIsLazyAndAnEmptyTextIsAnErrorNamingTheColumnAndTheRowOfTheInput()
    {
        // Row 19 is the fourth row of the second batch of 16: the message gives the input's row number.
        var rows = TopicRows.Make(24, seed: 12).Select(r => new TextOnly { Text = r.Text }).ToArray();
        rows[19].Text = "";

        // Scoring would meet the empty text: Transform, and reading the input columns alone, score nothing.
        var output = fixture.Classifier.Transform(fixture.Ml.Data.LoadFromEnumerable(rows));
        Assert.Equal(rows.Select(r => r.Text), output.GetColumn<string>("Text"));

        var error = Assert.Throws<InvalidOperationException>(() => output.GetColumn<float[]>("Score").ToArray());
        Assert.StartsWith("input column 'Text', row 19: the text is empty", error.Message);

        var engine = fixture.Ml.Model.CreatePredictionEngine<TextOnly, KeyPrediction>(fixture.Classifier);
        Assert.StartsWith("input column 'Text'", Assert.Throws<InvalidOperationException>(() => engine.Predict(new TextOnly { Text = "" })).Message);
    }

    [Fact]
    public void MLNetModelSaveThrowsAndPointsToSaveAdapter()
    {
        using var stream = new MemoryStream();
        var error = Assert.Throws<NotSupportedException>(() => fixture.Ml.Model.Save(fixture.Model, fixture.Train.Schema, stream));
        Assert.Contains("LoraTextClassificationPredictionTransformer", error.Message);
        Assert.Contains("SaveAdapter", error.Message);
        Assert.Contains("Load", error.Message);
    }

    [Fact]
    public void SavedAdapterLoadsBackWithItsLabelNamesAndMergesToTheSameScores()
    {
        string dir = Path.Combine(fixture.Root, "adapter-" + Guid.NewGuid().ToString("N"));
        fixture.Classifier.SaveAdapter(dir);
        using var loaded = LoraTextClassificationPredictionTransformer.Load(dir, fixture.Options);

        // The loaded transformer has no training data to copy KeyValues from: they come from the label names saved with the adapter.
        var keyed = fixture.Model.ElementAt(0).Transform(fixture.Test);
        var expected = fixture.Classifier.Transform(keyed);
        var actual = loaded.Transform(keyed);
        Assert.Equal(TopicRows.Classes, KeyValues(actual.Schema["PredictedLabel"]));
        Assert.Equal(expected.GetColumn<uint>("PredictedLabel"), actual.GetColumn<uint>("PredictedLabel"));
        Assert.Equal(expected.GetColumn<float[]>("Score"), actual.GetColumn<float[]>("Score"));
        var mapped = fixture.Ml.Transforms.Conversion.MapKeyToValue("PredictedLabel").Fit(actual).Transform(actual);
        Assert.Equal(fixture.Model.Transform(fixture.Test).GetColumn<string>("PredictedLabel"), mapped.GetColumn<string>("PredictedLabel"));

        loaded.Merge();
        var merged = loaded.Transform(keyed).GetColumn<float[]>("Score").ToArray();
        var before = expected.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < before.Length; i++)
        {
            for (int c = 0; c < 3; c++)
            {
                Assert.Equal(before[i][c], merged[i][c], MergeTolerance);
            }
        }
    }

    [Fact]
    public void EstimatorChainOutputShapeEndsWithStringPredictedLabelAndScoreVector()
    {
        var chain = fixture.Ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(fixture.Ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options))
            .Append(fixture.Ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));

        // MapKeyToValue accepts the shape only if the trainer's PredictedLabel is a key with KeyValues.
        var shape = chain.GetOutputSchema(Shapes.Of(fixture.Train.Schema));

        var predicted = Shapes.Find(shape, "PredictedLabel");
        Assert.False(predicted.IsKey);
        Assert.Equal(TextDataViewType.Instance, predicted.ItemType);
        var score = Shapes.Find(shape, "Score");
        Assert.Equal(SchemaShape.Column.VectorKind.Vector, score.Kind);
        Assert.Equal(NumberDataViewType.Single, score.ItemType);
        Assert.Contains(score.Annotations, a => a.Name == "SlotNames");
        Assert.Contains(score.Annotations, a => a.Name == "ScoreColumnKind");
    }

    [Fact]
    public void WrongColumnsGiveMLNetStyleErrorsNamingTheColumn()
    {
        var ml = fixture.Ml;
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(fixture.Train).Transform(fixture.Train);
        var trainer = ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options with { TextColumn = "Sentence" });
        Assert.StartsWith("Could not find input column 'Sentence'", Assert.Throws<ArgumentOutOfRangeException>(() => trainer.Fit(keyed)).Message);
        Assert.StartsWith("Could not find input column 'Sentence'", Assert.Throws<ArgumentOutOfRangeException>(() => trainer.GetOutputSchema(Shapes.Of(keyed.Schema))).Message);

        // A label that was not mapped to keys.
        var unkeyed = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options).Fit(fixture.Train));
        Assert.StartsWith("Schema mismatch for label column 'Label': expected Key", unkeyed.Message);
        Assert.Contains("got String", unkeyed.Message);
        Assert.Contains("MapValueToKey", unkeyed.Message);

        var numbers = ml.Data.LoadFromEnumerable(new[] { new { Text = 2.5f, Label = "fruit" } });
        var numbersKeyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(numbers).Transform(numbers);
        Assert.StartsWith(
            "Schema mismatch for input column 'Text': expected String, got Single",
            Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options).Fit(numbersKeyed)).Message);
        Assert.StartsWith("Schema mismatch for input column 'Text': expected String, got Single", Assert.Throws<ArgumentOutOfRangeException>(() => fixture.Classifier.Transform(numbers)).Message);
        Assert.StartsWith("Schema mismatch for input column 'Text': expected String, got Single", Assert.Throws<ArgumentOutOfRangeException>(() => fixture.Classifier.GetOutputSchema(numbers.Schema)).Message);

        var wrongCount = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options with { NumLabels = 4 }).Fit(keyed));
        Assert.StartsWith("Schema mismatch for label column 'Label'", wrongCount.Message);
        Assert.Contains("NumLabels = 4", wrongCount.Message);
    }

    [Fact]
    public void MissingKeyLabelIsAnErrorNamingTheRow()
    {
        // Keys fitted on fruit and tree only: the weather row (row 2) maps to the missing key 0.
        var ml = fixture.Ml;
        var rows = TopicRows.Make(6, seed: 3);
        var mapping = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows.Where(r => r.Label != "weather")));
        var keyed = mapping.Transform(ml.Data.LoadFromEnumerable(rows));

        var error = Assert.Throws<InvalidOperationException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options).Fit(keyed));
        Assert.StartsWith("label column 'Label', row 2: key value 0", error.Message);
    }

    [Fact]
    public void NonTextKeyValuesAreCopiedSoMapKeyToValueGivesTheOriginalNumbers()
    {
        // Labels 10, 20, 30 (Int32): MapValueToKey's KeyValues are numbers, which PredictedLabel carries over as is.
        var ml = fixture.Ml;
        int[] values = [10, 20, 30];
        var rows = TopicRows.Make(12, seed: 5).Select((r, i) => new NumberRow { Text = r.Text, Label = values[i % 3] }).ToArray();
        var options = fixture.Options with { Training = fixture.Options.Training with { MaxSteps = 2 } };
        var model = ml.Transforms.Conversion.MapValueToKey("Label")
            .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
            .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"))
            .Fit(ml.Data.LoadFromEnumerable(rows));
        using var classifier = (LoraTextClassificationPredictionTransformer)model.ElementAt(1);

        var output = model.Transform(ml.Data.LoadFromEnumerable(rows));
        Assert.Equal(NumberDataViewType.Int32, output.Schema["PredictedLabel"].Type);
        Assert.False(output.Schema["Score"].Annotations.Schema.GetColumnOrNull("SlotNames").HasValue);
        var predicted = output.GetColumn<int>("PredictedLabel").ToArray();
        var scores = output.GetColumn<float[]>("Score").ToArray();
        for (int i = 0; i < rows.Length; i++)
        {
            Assert.Equal(values[Array.IndexOf(scores[i], scores[i].Max())], predicted[i]);
        }
    }

    [Fact]
    public void EveryKeyIsAClassEvenWhenTheTrainingRowsLackOne()
    {
        // Keys fitted on 10, 20, 30; the training rows hold only 10 and 20 (numeric KeyValues, so no class names).
        var ml = fixture.Ml;
        int[] values = [10, 20, 30];
        var rows = TopicRows.Make(12, seed: 6).Select((r, i) => new NumberRow { Text = r.Text, Label = values[i % 3] }).ToArray();
        var keys = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows));
        var train = keys.Transform(ml.Data.LoadFromEnumerable(rows.Where(r => r.Label != 30)));
        var options = fixture.Options with { Training = fixture.Options.Training with { MaxSteps = 2 } };

        using var classifier = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(train);

        Assert.Equal(3, classifier.NumLabels);
        var output = classifier.Transform(train);
        Assert.Equal(new KeyDataViewType(typeof(uint), 3), output.Schema["PredictedLabel"].Type);
        Assert.Equal(new VectorDataViewType(NumberDataViewType.Single, 3), output.Schema["Score"].Type);
        VBuffer<int> keyValues = default;
        output.Schema["PredictedLabel"].Annotations.GetValue("KeyValues", ref keyValues);
        Assert.Equal(values, keyValues.DenseValues());
        Assert.Equal(3, ml.MulticlassClassification.Evaluate(output).ConfusionMatrix.NumberOfClasses);
    }

    [Fact]
    public void KeyKTrainsAsClassKMinusOneOfThePlainEstimator()
    {
        // MapValueToKey numbers the labels by first occurrence (tree = 1, weather = 2, fruit = 3 here); the
        // binding must train exactly what the plain estimator trains on the 0-based indices key − 1.
        var ml = fixture.Ml;
        var rows = TopicRows.Make(12, seed: 8).Skip(1).ToArray();
        var options = fixture.Options with { Training = fixture.Options.Training with { MaxSteps = 3 } };
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows)).Transform(ml.Data.LoadFromEnumerable(rows));
        using var binding = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed);

        string[] keyOrder = ["tree", "weather", "fruit"];
        int[] indices = rows.Select(r => Array.IndexOf(keyOrder, r.Label)).ToArray();
        var texts = rows.Select(r => r.Text).ToArray();
        using var plain = new LoraTextClassificationEstimator(options with { LabelNames = keyOrder })
            .Fit(TextTable.FromColumns(("Text", texts), ("Label", indices)));

        Assert.Equal(keyOrder, binding.Model.LabelNames);
        Assert.Equal(plain.TrainingResult!.StepLosses, binding.Model.TrainingResult!.StepLosses);
        Assert.Equal(plain.PredictLogits(texts), binding.Model.PredictLogits(texts));
    }

    [Fact]
    public void FitReadsTheTrainingRowsInOnePass()
    {
        // Text and label come from one cursor: an upstream pipeline runs once, and a row's values stay together.
        var ml = fixture.Ml;
        var source = new CountingRows<TopicRow>(TopicRows.Make(9, seed: 4));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(TopicRows.Make(9, seed: 4))).Transform(ml.Data.LoadFromEnumerable(source));
        var options = fixture.Options with { Training = fixture.Options.Training with { MaxSteps = 1 } };

        using var classifier = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed);

        Assert.Equal(1, source.Enumerations);
    }

    private sealed class CountingRows<T>(T[] rows) : IEnumerable<T>
    {
        public int Enumerations { get; private set; }

        public IEnumerator<T> GetEnumerator()
        {
            Enumerations++;
            return ((IEnumerable<T>)rows).GetEnumerator();
        }

        System.Collections.IEnumerator System.Collections.IEnumerable.GetEnumerator() => GetEnumerator();
    }

    public sealed class NumberRow
    {
        public string Text { get; set; } = "";

        public int Label { get; set; }
    }

    [Fact]
    public void CancellingDuringFitStopsTraining()
    {
        var ml = fixture.Ml;
        using var cancel = new CancellationTokenSource();
        var progress = new RecordingProgress<Training.TrainingProgress>(p =>
        {
            if (p.Step == 3)
            {
                cancel.Cancel();
            }
        });
        var trainer = ml.MulticlassClassification.Trainers.LoraTextClassification(fixture.Options, progress, cancel.Token);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(fixture.Train).Transform(fixture.Train);

        Assert.ThrowsAny<OperationCanceledException>(() => trainer.Fit(keyed));
        Assert.Equal(3, progress.Reports.Count);
    }

    private static string[] SlotNames(DataViewSchema.Column column) => TextVector(column, "SlotNames");

    private static string[] KeyValues(DataViewSchema.Column column) => TextVector(column, "KeyValues");

    private static string[] TextVector(DataViewSchema.Column column, string kind)
    {
        VBuffer<ReadOnlyMemory<char>> values = default;
        column.Annotations.GetValue(kind, ref values);
        return values.DenseValues().Select(static v => v.ToString()).ToArray();
    }
}
