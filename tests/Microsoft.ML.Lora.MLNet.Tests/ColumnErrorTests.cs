using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// Bad input: wrong column names and types are ML.NET-style errors naming the column (in Fit, before the model
/// loads, in both GetOutputSchema methods and in Transform); bad values name the column and the row; invalid
/// options name the option and the value.
/// </summary>
public sealed class ColumnErrorTests
{
    // A folder that does not exist: an error about it would mean the model was loaded before the columns were checked.
    private const string NoModel = "/nonexistent/model";

    private readonly MLContext ml = new(seed: 1);

    public sealed class NumberSentence
    {
        public float Sentence1 { get; set; }

        public string Label { get; set; } = "";
    }

    [Fact]
    public void ClassificationColumnsAreCheckedByNameAndTypeBeforeTheModelLoads()
    {
        var rows = ml.Data.LoadFromEnumerable(StoryRows.Topic(6, seed: 1));
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows);

        var missing = ml.MulticlassClassification.Trainers.LoraTextClassification(NoModel, sentence1ColumnName: "Text");
        Assert.StartsWith("Could not find sentence column 'Text'", Assert.Throws<ArgumentOutOfRangeException>(() => missing.Fit(keyed)).Message);
        Assert.StartsWith("Could not find sentence column 'Text'", Assert.Throws<ArgumentOutOfRangeException>(() => missing.GetOutputSchema(Shapes.Of(keyed.Schema))).Message);

        var pair = ml.MulticlassClassification.Trainers.LoraTextClassification(NoModel, sentence2ColumnName: "Sentence2");
        Assert.StartsWith("Could not find sentence2 column 'Sentence2'", Assert.Throws<ArgumentOutOfRangeException>(() => pair.Fit(keyed)).Message);

        var unkeyed = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(NoModel).Fit(rows));
        Assert.StartsWith("Schema mismatch for label column 'Label': expected Key", unkeyed.Message);
        Assert.Contains("got String", unkeyed.Message);
        Assert.Contains("MapValueToKey", unkeyed.Message);

        var numbers = ml.Data.LoadFromEnumerable(new[] { new NumberSentence { Sentence1 = 2.5f, Label = "food" } });
        var numbersKeyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(numbers).Transform(numbers);
        var mismatch = Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(NoModel).Fit(numbersKeyed));
        Assert.StartsWith("Schema mismatch for sentence column 'Sentence1': expected String, got Single", mismatch.Message);

        var badValidation = TestSettings.Classification();
        badValidation.ModelPath = NoModel;
        badValidation.ValidationSet = rows;
        Assert.StartsWith("Schema mismatch for label column 'Label': expected Key", Assert.Throws<ArgumentOutOfRangeException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(badValidation).Fit(keyed)).Message);
    }

    [Fact]
    public void RegressionNeedsASingleLabelAndAFiniteValueInEveryRow()
    {
        var strings = ml.Data.LoadFromEnumerable(StoryRows.Topic(3, seed: 1));
        var error = Assert.Throws<ArgumentOutOfRangeException>(() => ml.Regression.Trainers.LoraTextRegression(NoModel).Fit(strings));
        Assert.StartsWith("Schema mismatch for label column 'Label': expected Single, got String", error.Message);
        Assert.StartsWith("Schema mismatch for label column 'Label'", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Regression.Trainers.LoraTextRegression(NoModel).GetOutputSchema(Shapes.Of(strings.Schema))).Message);

        var rows = StoryRows.Mood(5, seed: 1);
        rows[3].Label = float.NaN;
        var options = TestSettings.Regression();
        var nan = Assert.Throws<InvalidOperationException>(() => ml.Regression.Trainers.LoraTextRegression(options).Fit(ml.Data.LoadFromEnumerable(rows)));
        Assert.StartsWith("label column 'Label', row 3: the label is NaN", nan.Message);
    }

    [Fact]
    public void CausalLmColumnsAreCheckedByNameAndType()
    {
        var data = ml.Data.LoadFromEnumerable(CausalLmFixture.Facts);
        var missing = ml.Transforms.Text.LoraCausalLm(NoModel, completionColumnName: "Answer");
        Assert.StartsWith("Could not find completion column 'Answer'", Assert.Throws<ArgumentOutOfRangeException>(() => missing.Fit(data)).Message);
        Assert.StartsWith("Could not find completion column 'Answer'", Assert.Throws<ArgumentOutOfRangeException>(() => missing.GetOutputSchema(Shapes.Of(data.Schema))).Message);

        var numbers = ml.Data.LoadFromEnumerable(new[] { new { Prompt = 1.5f, Completion = "x" } });
        Assert.StartsWith("Schema mismatch for prompt column 'Prompt': expected String, got Single", Assert.Throws<ArgumentOutOfRangeException>(() => ml.Transforms.Text.LoraCausalLm(NoModel).Fit(numbers)).Message);
    }

    [Fact]
    public void AnEmptyTextIsAnErrorNamingTheColumnAndTheRowInFitAndWhenTheOutputIsRead()
    {
        var rows = StoryRows.Topic(24, seed: 12);
        rows[19].Sentence1 = "";
        var data = ml.Data.LoadFromEnumerable(rows);
        var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(data);
        var options = TestSettings.Classification();
        options.MaxSteps = 1;
        var fit = Assert.Throws<InvalidOperationException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed));
        Assert.StartsWith("sentence column 'Sentence1', row 19: the text is empty", fit.Message);

        // Transform is lazy: the input columns read fine, and the scores name the input row (the fourth of the second batch of 16).
        rows[19].Sentence1 = "Tom had a ball.";
        using var classifier = ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(ml.Transforms.Conversion.MapValueToKey("Label").Fit(data).Transform(ml.Data.LoadFromEnumerable(rows)));
        rows[19].Sentence1 = "";
        var output = classifier.Transform(ml.Data.LoadFromEnumerable(rows));
        Assert.Equal(rows.Select(r => r.Sentence1), output.GetColumn<string>("Sentence1"));
        var read = Assert.Throws<InvalidOperationException>(() => output.GetColumn<float[]>("Score").ToArray());
        Assert.StartsWith("sentence column 'Sentence1', row 19: the text is empty", read.Message);
        Assert.StartsWith("Schema mismatch for sentence column 'Sentence1': expected String, got Single", Assert.Throws<ArgumentOutOfRangeException>(() => classifier.Transform(ml.Data.LoadFromEnumerable(new[] { new NumberSentence() }))).Message);
    }

    [Fact]
    public void AMissingKeyIsAnErrorNamingTheRow()
    {
        // Keys fitted on animal and food only: the toy row (row 2) maps to the missing key 0.
        var rows = StoryRows.Topic(6, seed: 3);
        var mapping = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(rows.Where(r => r.Label != "toy")));
        var keyed = mapping.Transform(ml.Data.LoadFromEnumerable(rows));
        var options = TestSettings.Classification();
        var error = Assert.Throws<InvalidOperationException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed));
        Assert.StartsWith("label column 'Label', row 2: key value 0", error.Message);
    }

    [Fact]
    public void InvalidOptionsNameTheOptionAndTheValueWhenTheTrainerIsMade()
    {
        var options = TestSettings.Classification();
        options.Rank = 0;
        var rank = Assert.Throws<ArgumentException>(() => ml.MulticlassClassification.Trainers.LoraTextClassification(options));
        Assert.StartsWith("LoraTextClassificationTrainer.Options.Rank = 0 is invalid: expected at least 1", rank.Message);

        var regression = TestSettings.Regression();
        regression.Sentence2ColumnName = regression.Sentence1ColumnName;
        Assert.StartsWith("LoraTextRegressionTrainer.Options.Sentence2ColumnName = 'Sentence1' is invalid", Assert.Throws<ArgumentException>(() => ml.Regression.Trainers.LoraTextRegression(regression)).Message);
        Assert.StartsWith("LoraCausalLmTrainer.Options.ModelPath is empty", Assert.Throws<ArgumentException>(() => ml.Transforms.Text.LoraCausalLm("")).Message);
    }

    [Fact]
    public void TheTrainerKeepsACopyOfItsOptions()
    {
        var options = TestSettings.Classification();
        var trainer = ml.MulticlassClassification.Trainers.LoraTextClassification(options);
        options.Sentence1ColumnName = "Changed";
        var rows = ml.Data.LoadFromEnumerable(StoryRows.Topic(3, seed: 1));
        var shape = trainer.GetOutputSchema(Shapes.Of(ml.Transforms.Conversion.MapValueToKey("Label").Fit(rows).Transform(rows).Schema));
        Assert.Contains(shape, c => c.Name == "Score");
    }
}
