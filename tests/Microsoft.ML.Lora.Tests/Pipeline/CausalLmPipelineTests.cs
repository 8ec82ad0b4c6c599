using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;
using Microsoft.ML.Lora.Tests.Onnx;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>Causal-LM SFT through the pipeline API: Fit trains, Transform generates, and the adapter saves, loads, merges and exports.</summary>
public sealed class CausalLmPipelineTests(CausalLmPipelineFixture fixture) : IClassFixture<CausalLmPipelineFixture>
{
    // Same F32 weights run by ONNX Runtime's kernels (another summation order): the bar of the exporter's own tests.
    private const double OnnxTolerance = 1e-4;

    // W + s·B·A summed once versus x·W + s·(x·A)·B per call: float rounding only, far below the logit scale.
    private const double MergeTolerance = 1e-4;

    // Prompts the adapter never saw: their continuations are long and arbitrary, so equal texts mean equal models.
    private static readonly string[] Unseen = ["hello there ", "the quick brown fox "];

    private static string[] AllPrompts => [.. CausalLmPipelineFixture.Pairs.Select(p => p.Prompt), .. Unseen];

    [Fact]
    public void FitLearnsTheCompletionsAndTransformAddsTheGeneratedText()
    {
        var losses = fixture.Transformer.TrainingResult!.StepLosses;
        Assert.True(losses[^1] < 0.05 * losses[0], $"loss {losses[0]:F3} → {losses[^1]:F3}: training did not converge");

        var output = fixture.Transformer.Transform(CausalLmPipelineFixture.Data);

        Assert.Equal(["Prompt", "Completion", "GeneratedText"], output.Schema.Select(c => c.Name));
        Assert.Equal(CausalLmPipelineFixture.Pairs.Select(p => p.Completion), output.GetColumn<string>("GeneratedText"));

        // The base model without the adapter does not know the answers, so the adapter is what learned them.
        using (fixture.Transformer.Model.DisableAdapters())
        {
            var baseline = fixture.Transformer.Generate(CausalLmPipelineFixture.Pairs.Select(p => p.Prompt).ToList());
            Assert.NotEqual(CausalLmPipelineFixture.Pairs.Select(p => p.Completion), baseline);
        }
    }

    [Fact]
    public void ProgressIsReportedOncePerOptimizerStep()
    {
        var reports = fixture.Progress.Reports;
        Assert.Equal(fixture.Options.Training.MaxSteps, reports.Count);
        Assert.Equal(Enumerable.Range(1, reports.Count), reports.Select(r => r.Step));
        Assert.All(reports, r => Assert.Equal(reports.Count, r.TotalSteps));
        Assert.Equal(fixture.Transformer.TrainingResult!.StepLosses, reports.Select(r => r.Loss));
    }

    [Fact]
    public void SavedAdapterLoadsBackAndGeneratesTheSameText()
    {
        using var temp = new TempFolder();
        string dir = temp.File("adapter");
        fixture.Transformer.SaveAdapter(dir);

        Assert.Equal(["adapter"], temp.Entries());
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));

        using var loaded = LoraCausalLmTransformer.Load(dir, fixture.Options);
        Assert.Null(loaded.TrainingResult);
        Assert.Equal(fixture.Transformer.Generate(AllPrompts), loaded.Generate(AllPrompts));
    }

    [Fact]
    public void MergedModelGivesTheSameGreedyGenerationsAndLogits()
    {
        using var temp = new TempFolder();
        fixture.Transformer.SaveAdapter(temp.File("adapter"));
        using var merged = LoraCausalLmTransformer.Load(temp.File("adapter"), fixture.Options);
        var batch = BatchOf(merged.Tokenizer);
        float[] before = Logits(merged.Model, batch);

        merged.Merge();

        Assert.True(merged.IsMerged);
        Assert.Empty(merged.Model.Adapters());
        ReferenceModelTests.AssertClose(before, Logits(merged.Model, batch), MergeTolerance, "merged logits");
        Assert.Equal(fixture.Transformer.Generate(AllPrompts), merged.Generate(AllPrompts));
        var error = Assert.Throws<InvalidOperationException>(() => merged.SaveAdapter(temp.File("again")));
        Assert.Contains("merged", error.Message);
    }

    [Fact]
    public void ExportedOnnxGivesOurLogitsInOnnxRuntime()
    {
        using var temp = new TempFolder();
        string path = temp.File("sft.onnx");
        fixture.Transformer.ExportOnnx(path);

        var batch = BatchOf(fixture.Transformer.Tokenizer);
        var ours = Logits(fixture.Transformer.Model, batch);
        var outputs = OnnxRuntimeChecker.Run(path, new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64(batch.InputIds.Select(i => (long)i).ToArray(), batch.B, batch.T),
            ["attention_mask"] = OnnxInput.Int64(Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T),
        });

        ReferenceModelTests.AssertClose(ours, outputs["logits"].AsFloats(), OnnxTolerance, "ONNX Runtime logits of the fine-tuned model");
    }

    [Fact]
    public void CancellationStopsFitWithOperationCanceledAndLeavesNoFiles()
    {
        using var cts = new CancellationTokenSource();
        var progress = new RecordingProgress<TrainingProgress>(p =>
        {
            if (p.Step == 2)
            {
                cts.Cancel();
            }
        });
        var entries = Directory.GetFileSystemEntries(fixture.Root, "*", SearchOption.AllDirectories).Order().ToList();

        Assert.ThrowsAny<OperationCanceledException>(() => new LoraCausalLmEstimator(fixture.Options).Fit(CausalLmPipelineFixture.Data, progress, cts.Token));

        Assert.Equal(2, progress.Reports.Count);
        Assert.Equal(entries, Directory.GetFileSystemEntries(fixture.Root, "*", SearchOption.AllDirectories).Order().ToList());
    }

    [Fact]
    public void SaveAdapterRefusesAFolderThatIsNotEmptyAndChangesNothing()
    {
        using var temp = new TempFolder();
        string dir = temp.File("adapter");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "notes.txt"), "keep");

        var error = Assert.Throws<IOException>(() => fixture.Transformer.SaveAdapter(dir));

        Assert.Contains("not empty", error.Message);
        Assert.Equal(["adapter"], temp.Entries());
        Assert.Equal(["notes.txt"], Directory.GetFiles(dir).Select(Path.GetFileName));
    }

    [Fact]
    public void BadColumnsAreReportedByNameBeforeTheModelLoads()
    {
        // A model path that does not exist: each column error must come first.
        var estimator = new LoraCausalLmEstimator(fixture.Options with { ModelPath = Path.Combine(fixture.Root, "no-such-model") });

        var missing = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Question", new[] { "q" }), ("Completion", new[] { "a" }))));
        Assert.Contains("column 'Prompt' (LoraCausalLmOptions.PromptColumn) not found", missing.Message);
        Assert.Contains("'Question'", missing.Message);

        var wrongType = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Prompt", new[] { "q" }), ("Completion", new[] { 1 }))));
        Assert.Contains("column 'Completion' (LoraCausalLmOptions.CompletionColumn) holds Int32; expected String", wrongType.Message);

        var empty = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Prompt", new[] { "q", "r" }), ("Completion", new[] { "a", "" }))));
        Assert.Contains("column 'Completion' (LoraCausalLmOptions.CompletionColumn), row 1: the text is empty", empty.Message);

        var noRows = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Prompt", Array.Empty<string>()), ("Completion", Array.Empty<string>()))));
        Assert.Contains("no rows", noRows.Message);

        var transform = Assert.Throws<ArgumentException>(() => fixture.Transformer.Transform(TextTable.FromColumns(("Text", new[] { "q" }))));
        Assert.Contains("column 'Prompt' (LoraCausalLmOptions.PromptColumn) not found", transform.Message);

        var option = Assert.Throws<ArgumentException>(() => new LoraCausalLmEstimator(fixture.Options with { CompletionColumn = "Prompt" }));
        Assert.Contains("CompletionColumn", option.Message);
    }

    [Fact]
    public void ChatMessagesAreLearnedAndAnsweredThroughTheTemplate()
    {
        ChatMessage[] Chat(string question, string answer) => [new(ChatRole.User, question), new(ChatRole.Assistant, answer)];
        var conversations = CausalLmPipelineFixture.Pairs.Select(p => Chat(p.Prompt.Trim(), p.Completion)).ToArray();
        var data = TextTable.FromColumns(("Messages", conversations));
        var options = fixture.Options with { MessagesColumn = "Messages", ChatTemplate = ChatTemplate.FromName("chatml"), Generation = new GenerationOptions { MaxNewTokens = 24 }, Training = fixture.Options.Training with { MaxSteps = 300 } };

        using var transformer = new LoraCausalLmEstimator(options).Fit(data);
        var output = transformer.Transform(data);

        // The reply stops at the template's end-of-turn marker, which decodes as text with this byte-level
        // tokenizer (it has no <|im_end|> token), so the generated text starts with the learned reply.
        var replies = output.GetColumn<string>("GeneratedText");
        for (int i = 0; i < conversations.Length; i++)
        {
            Assert.StartsWith(CausalLmPipelineFixture.Pairs[i].Completion + "<|im_end|>", replies[i]);
        }
    }

    [Fact]
    public void QloraFitsOnAnNf4BaseAndItsAdapterLoadsOntoTheSameQuantizedBase()
    {
        var options = fixture.Options with { Quantize = LoraQuantization.Nf4DoubleQuant };
        using var trained = new LoraCausalLmEstimator(options).Fit(CausalLmPipelineFixture.Data);

        Assert.Equal(DType.NF4, trained.Model.Layers[0].SelfAttn.QProj.Weight.Value.DType);
        var losses = trained.TrainingResult!.StepLosses;
        Assert.True(losses[^1] < 0.05 * losses[0], $"QLoRA loss {losses[0]:F3} → {losses[^1]:F3}: training did not converge");
        Assert.Equal(CausalLmPipelineFixture.Pairs.Select(p => p.Completion), trained.Generate(CausalLmPipelineFixture.Pairs.Select(p => p.Prompt).ToList()));

        using var temp = new TempFolder();
        trained.SaveAdapter(temp.File("adapter"));
        using var loaded = LoraCausalLmTransformer.Load(temp.File("adapter"), options);
        Assert.Equal(trained.Generate(AllPrompts), loaded.Generate(AllPrompts));

        // The export dequantizes the NF4 weights and merges the adapter: ONNX Runtime gives our logits.
        trained.ExportOnnx(temp.File("qlora.onnx"));
        var batch = BatchOf(trained.Tokenizer);
        var outputs = OnnxRuntimeChecker.Run(temp.File("qlora.onnx"), new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64(batch.InputIds.Select(i => (long)i).ToArray(), batch.B, batch.T),
            ["attention_mask"] = OnnxInput.Int64(Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T),
        });
        ReferenceModelTests.AssertClose(Logits(trained.Model, batch), outputs["logits"].AsFloats(), OnnxTolerance, "ONNX Runtime logits of the QLoRA model");
    }

    private static CausalLmBatch BatchOf(Tokenizer tokenizer)
    {
        // Equal-length rows: the ONNX comparison then needs no padding.
        var rows = AllPrompts.Select(p => tokenizer.Encode(p, addSpecialTokens: true)).Select(ids => ids[..4]).ToList();
        return CausalLmBatch.FromRows(rows);
    }

    private static float[] Logits(LlamaForCausalLM model, CausalLmBatch batch)
    {
        using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, model.Config.VocabSize);
        model.Forward(batch, logits);
        return logits.ToFloatArray();
    }
}
