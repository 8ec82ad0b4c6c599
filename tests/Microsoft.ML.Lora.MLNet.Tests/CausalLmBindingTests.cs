using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>Causal-LM SFT as an ML.NET estimator: Fit trains on String columns, Transform and PredictionEngine generate.</summary>
public sealed class CausalLmBindingTests(CausalLmBindingFixture fixture) : IClassFixture<CausalLmBindingFixture>
{
    // Prompts the adapter never saw: their continuations are long and arbitrary, so equal texts mean the same model and path.
    private static readonly string[] Unseen = ["hello there ", "the quick brown fox "];

    public sealed class PromptOnly
    {
        public string Prompt { get; set; } = "";
    }

    public sealed class Generated
    {
        public string GeneratedText { get; set; } = "";
    }

    [Fact]
    public void FitThroughMLNetLearnsTheCompletionsAndTransformAddsThem()
    {
        var losses = fixture.Transformer.Model.TrainingResult!.StepLosses;
        Assert.True(losses[^1] < 0.05 * losses[0], $"loss {losses[0]:F3} → {losses[^1]:F3}: training did not converge");
        Assert.Equal(fixture.Options.Training.MaxSteps, fixture.Progress.Reports.Count);

        var output = fixture.Transformer.Transform(fixture.Data);

        Assert.Equal(["Prompt", "Completion", "GeneratedText"], output.Schema.Select(c => c.Name));
        Assert.Equal(TextDataViewType.Instance, output.Schema["GeneratedText"].Type);
        Assert.Equal(CausalLmBindingFixture.Rows.Select(r => r.Prompt), output.GetColumn<string>("Prompt"));
        Assert.Equal(CausalLmBindingFixture.Rows.Select(r => r.Completion), output.GetColumn<string>("GeneratedText"));
    }

    [Fact]
    public void TransformAndPredictionEngineGenerateWhatThePlainTransformerGenerates()
    {
        string[] prompts = [.. CausalLmBindingFixture.Rows.Select(r => r.Prompt), .. Unseen];
        var expected = fixture.Transformer.Model.Generate(prompts);

        // Only the prompt column is needed to transform.
        var view = fixture.Transformer.Transform(fixture.Ml.Data.LoadFromEnumerable(prompts.Select(p => new PromptOnly { Prompt = p })));
        Assert.Equal(expected, view.GetColumn<string>("GeneratedText"));

        var engine = fixture.Ml.Model.CreatePredictionEngine<PromptOnly, Generated>(fixture.Transformer);
        Assert.Equal(expected, prompts.Select(p => engine.Predict(new PromptOnly { Prompt = p }).GeneratedText));
    }

    [Fact]
    public void SavedAdapterLoadsBackIntoAnMLNetTransformerThatGeneratesTheSameText()
    {
        string dir = Path.Combine(fixture.Root, "adapter-" + Guid.NewGuid().ToString("N"));
        fixture.Transformer.SaveAdapter(dir);
        using var loaded = LoraCausalLmPredictionTransformer.Load(dir, fixture.Options);

        var data = fixture.Ml.Data.LoadFromEnumerable(Unseen.Select(p => new PromptOnly { Prompt = p }));
        Assert.Equal(fixture.Transformer.Transform(data).GetColumn<string>("GeneratedText"), loaded.Transform(data).GetColumn<string>("GeneratedText"));
    }

    [Fact]
    public void MLNetModelSaveThrowsAndPointsToSaveAdapter()
    {
        using var stream = new MemoryStream();
        var error = Assert.Throws<NotSupportedException>(() => fixture.Ml.Model.Save(fixture.Transformer, fixture.Data.Schema, stream));
        Assert.Contains("LoraCausalLmPredictionTransformer", error.Message);
        Assert.Contains("SaveAdapter", error.Message);
        Assert.Contains("Load", error.Message);
    }

    [Fact]
    public void OutputSchemasAddTheGeneratedTextColumn()
    {
        var estimator = fixture.Ml.Transforms.Text.LoraCausalLm(fixture.Options);
        var shape = estimator.GetOutputSchema(Shapes.Of(fixture.Data.Schema));
        Assert.Equal(["Prompt", "Completion", "GeneratedText"], shape.Select(c => c.Name));
        var generated = Shapes.Find(shape, "GeneratedText");
        Assert.Equal(SchemaShape.Column.VectorKind.Scalar, generated.Kind);
        Assert.Equal(TextDataViewType.Instance, generated.ItemType);

        var schema = fixture.Transformer.GetOutputSchema(fixture.Data.Schema);
        Assert.Equal(["Prompt", "Completion", "GeneratedText"], schema.Select(c => c.Name));
    }

    [Fact]
    public void WrongColumnsGiveMLNetStyleErrorsNamingTheColumn()
    {
        var estimator = fixture.Ml.Transforms.Text.LoraCausalLm(fixture.Options with { CompletionColumn = "Answer" });
        var missing = Assert.Throws<ArgumentOutOfRangeException>(() => estimator.Fit(fixture.Data));
        Assert.StartsWith("Could not find completion column 'Answer'", missing.Message);
        Assert.StartsWith("Could not find completion column 'Answer'", Assert.Throws<ArgumentOutOfRangeException>(() => estimator.GetOutputSchema(Shapes.Of(fixture.Data.Schema))).Message);

        var numbers = fixture.Ml.Data.LoadFromEnumerable(new[] { new { Prompt = 1.5f, Completion = "x" } });
        var mismatch = Assert.Throws<ArgumentOutOfRangeException>(() => fixture.Ml.Transforms.Text.LoraCausalLm(fixture.Options).Fit(numbers));
        Assert.StartsWith("Schema mismatch for prompt column 'Prompt': expected String, got Single", mismatch.Message);
        Assert.StartsWith("Schema mismatch for prompt column 'Prompt': expected String, got Single", Assert.Throws<ArgumentOutOfRangeException>(() => fixture.Transformer.Transform(numbers)).Message);

        var messages = Assert.Throws<ArgumentException>(() => fixture.Ml.Transforms.Text.LoraCausalLm(fixture.Options with { MessagesColumn = "Messages" }));
        Assert.Contains("MessagesColumn", messages.Message);

        // An empty prompt, as the plain Transform refuses it, named by column and input row when the output is read.
        var emptyPrompt = fixture.Transformer.Transform(fixture.Ml.Data.LoadFromEnumerable(new[] { new PromptOnly { Prompt = "hi " }, new PromptOnly { Prompt = "" } }));
        var empty = Assert.Throws<InvalidOperationException>(() => emptyPrompt.GetColumn<string>("GeneratedText").ToArray());
        Assert.StartsWith("prompt column 'Prompt', row 1: the text is empty", empty.Message);
    }
}
