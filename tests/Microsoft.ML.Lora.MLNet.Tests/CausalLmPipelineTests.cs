using Microsoft.ML.Data;
using Microsoft.ML.Lora.Examples;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>One LoRA SFT run of the real TinyStories model through ML.NET (facts about a new character), shared by the causal-LM tests.</summary>
public sealed class CausalLmFixture : IDisposable
{
    // Completions start without a space: the SentencePiece-style tokenizer puts the word boundary before every piece.
    public static readonly PromptRow[] Facts =
    [
        new() { Prompt = "Zog the dragon was", Completion = "purple and very kind." },
        new() { Prompt = "Zog liked to eat", Completion = "green soup with a big spoon." },
        new() { Prompt = "Zog lived in", Completion = "a tall tower by the sea." },
        new() { Prompt = "Zog's best friend was", Completion = "a small red bird named Pip." },
    ];

    public CausalLmFixture()
    {
        Root = Directory.CreateTempSubdirectory("lora-mlnet-lm-").FullName;
        Data = Ml.Data.LoadFromEnumerable(Facts);
        Options = Settings();
        Options.ValidationSet = Ml.Data.LoadFromEnumerable(Facts[..2]);
        Options.Progress = Progress;
        Transformer = Ml.Transforms.Text.LoraCausalLm(Options).Fit(Data);
    }

    public MLContext Ml { get; } = new(seed: 1);

    public string Root { get; }

    public IDataView Data { get; }

    public LoraCausalLmTrainer.Options Options { get; }

    public RecordingProgress<TrainingProgress> Progress { get; } = new();

    public LoraCausalLmTransformer Transformer { get; }

    /// <summary>60 steps of the 4 facts at rate 1e-2 (measured: the loss falls below 1 % of its start by step 40).</summary>
    public static LoraCausalLmTrainer.Options Settings() => new()
    {
        ModelPath = TinyStories.Path,
        LearningRate = 1e-2,
        MaxEpochs = 60,
        BatchSize = 4,
        MaxNewTokens = 16,
    };

    public void Dispose()
    {
        Transformer.Dispose();
        Directory.Delete(Root, recursive: true);
    }

    /// <summary>A training row as ML.NET's LoadFromEnumerable reads it (String columns).</summary>
    public sealed class PromptRow
    {
        public string Prompt { get; set; } = "";

        public string Completion { get; set; } = "";
    }
}

/// <summary>Causal-LM SFT as an ML.NET text transform: Fit trains on String columns, Transform and PredictionEngine generate.</summary>
public sealed class CausalLmPipelineTests(CausalLmFixture fixture) : IClassFixture<CausalLmFixture>
{
    // Prompts the adapter never saw: their continuations are long and arbitrary, so equal texts mean the same model and path.
    private static readonly string[] Unseen = ["Once upon a time, there was a", "Tom and Lily went to the"];

    public sealed class PromptOnly
    {
        public string Prompt { get; set; } = "";
    }

    public sealed class Generated
    {
        public string GeneratedText { get; set; } = "";
    }

    [Fact]
    public void FitLearnsTheCompletionsThatTheBaseModelDoesNotWrite()
    {
        var metrics = fixture.Transformer.TrainingMetrics!;
        Assert.True(metrics.StepLosses[^1] < 0.05 * metrics.StepLosses[0], $"loss {metrics.StepLosses[0]:F3} → {metrics.StepLosses[^1]:F3}");
        Assert.Equal(60, fixture.Progress.Reports.Count);

        var output = fixture.Transformer.Transform(fixture.Data);
        Assert.Equal(["Prompt", "Completion", "GeneratedText"], output.Schema.Select(c => c.Name));
        Assert.Equal(CausalLmFixture.Facts.Select(r => r.Completion), output.GetColumn<string>("GeneratedText"));

        // The same step with a vanishing rate leaves the base model: it continues every prompt otherwise.
        var options = CausalLmFixture.Settings();
        options.LearningRate = 1e-12;
        options.MaxSteps = 1;
        using var untrained = new MLContext(seed: 1).Transforms.Text.LoraCausalLm(options).Fit(fixture.Data);
        var baseTexts = untrained.Transform(fixture.Data).GetColumn<string>("GeneratedText").ToArray();
        Assert.All(baseTexts.Zip(CausalLmFixture.Facts), p => Assert.NotEqual(p.Second.Completion, p.First));
    }

    [Fact]
    public void ValidationLossIsReportedAfterEveryEpoch()
    {
        var metrics = fixture.Transformer.TrainingMetrics!;
        Assert.Equal(Enumerable.Range(1, 60), metrics.ValidationLosses.Select(v => v.Step));
        Assert.True(metrics.ValidationLoss < 0.05 * metrics.ValidationLosses[0].Loss, $"validation loss {metrics.ValidationLosses[0].Loss:F3} → {metrics.ValidationLoss:F3}");
    }

    [Fact]
    public void TransformAndPredictionEngineGenerateTheSameTextsFromThePromptColumnAlone()
    {
        string[] prompts = [.. CausalLmFixture.Facts.Select(r => r.Prompt), .. Unseen];
        var view = fixture.Transformer.Transform(fixture.Ml.Data.LoadFromEnumerable(prompts.Select(p => new PromptOnly { Prompt = p })));
        var batched = view.GetColumn<string>("GeneratedText").ToArray();
        Assert.Equal(fixture.Transformer.Generate(prompts), batched);

        var engine = fixture.Ml.Model.CreatePredictionEngine<PromptOnly, Generated>(fixture.Transformer);
        Assert.Equal(batched, prompts.Select(p => engine.Predict(new PromptOnly { Prompt = p }).GeneratedText));
    }

    [Fact]
    public void BatchedGenerationEqualsGeneratingEachPromptAlone()
    {
        // Prompts of equal token length share one KV cache; each row's tokens must not depend on its batch.
        var text = new PromptText(fixture.Transformer.Tokenizer, trainOnPrompt: false);
        string[] candidates = ["Zog the dragon was", "Zog liked to eat", "Lily saw a big", "Tom had a red", "The cat sat on", "Mia found a small", "Ben ran to the", "Sue ate a big"];
        var ids = candidates.Select(text.PromptIds).GroupBy(static i => i.Length).MaxBy(static g => g.Count())!.ToArray();
        Assert.True(ids.Length >= 3, $"only {ids.Length} prompts of one token length");
        var options = new GenerationOptions { MaxNewTokens = 12, StopTokenIds = [-1] };
        var together = BatchedGeneration.Generate(fixture.Transformer.Model, ids, options, batchSize: 8, CancellationToken.None);
        var alone = BatchedGeneration.Generate(fixture.Transformer.Model, ids, options, batchSize: 1, CancellationToken.None);
        Assert.Equal(alone.Select(static a => a.ToArray()), together.Select(static t => t.ToArray()));
    }

    [Fact]
    public void SavedAdapterLoadsBackAndMergesToTheSameGenerations()
    {
        string dir = Path.Combine(fixture.Root, "adapter");
        fixture.Transformer.SaveAdapter(dir);
        using var loaded = LoraCausalLmTransformer.Load(fixture.Ml, dir);
        var data = fixture.Ml.Data.LoadFromEnumerable(Unseen.Select(p => new PromptOnly { Prompt = p }));
        var expected = fixture.Transformer.Transform(data).GetColumn<string>("GeneratedText").ToArray();
        Assert.Equal(expected, loaded.Transform(data).GetColumn<string>("GeneratedText"));

        loaded.Merge();
        Assert.Equal(expected, loaded.Transform(data).GetColumn<string>("GeneratedText"));
    }

    [Fact]
    public void OutputSchemasAddTheGeneratedTextColumn()
    {
        var shape = fixture.Ml.Transforms.Text.LoraCausalLm(CausalLmFixture.Settings()).GetOutputSchema(Shapes.Of(fixture.Data.Schema));
        Assert.Equal(["Prompt", "Completion", "GeneratedText"], shape.Select(c => c.Name));
        Assert.Equal(TextDataViewType.Instance, Shapes.Find(shape, "GeneratedText").ItemType);
        Assert.Equal(["Prompt", "Completion", "GeneratedText"], fixture.Transformer.GetOutputSchema(fixture.Data.Schema).Select(c => c.Name));
    }

    [Fact]
    public void QloraTrainsOnAnNf4BaseAndItsAdapterLoadsOntoTheSameQuantizedBase()
    {
        var options = CausalLmFixture.Settings();
        options.Quantization = LoraQuantization.Nf4DoubleQuant;
        var ml = new MLContext(seed: 1);
        using var qlora = ml.Transforms.Text.LoraCausalLm(options).Fit(fixture.Data);
        var losses = qlora.TrainingMetrics!.StepLosses;
        Assert.True(losses[^1] < 0.05 * losses[0], $"QLoRA loss {losses[0]:F3} → {losses[^1]:F3}");
        Assert.Equal(CausalLmFixture.Facts.Select(r => r.Completion), qlora.Transform(fixture.Data).GetColumn<string>("GeneratedText"));

        string dir = Path.Combine(fixture.Root, "qlora");
        qlora.SaveAdapter(dir);
        using var loaded = LoraCausalLmTransformer.Load(ml, dir);
        Assert.Equal(qlora.Transform(fixture.Data).GetColumn<string>("GeneratedText"), loaded.Transform(fixture.Data).GetColumn<string>("GeneratedText"));
    }
}
