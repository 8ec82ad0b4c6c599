using System.Text.Json;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;
using Microsoft.ML.Lora.Tests.Onnx;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>Text classification through the pipeline API: Fit trains, Transform predicts, and the adapter saves, loads, merges and exports.</summary>
public sealed class ClassificationPipelineTests(ClassificationPipelineFixture fixture) : IClassFixture<ClassificationPipelineFixture>
{
    // Held-out accuracy bar on the balanced two-topic task, where chance is 0.5. A model guessing at chance
    // reaches 0.9 on 40 rows with probability below 1e-6 (binomial tail), so passing means it learned.
    // Eight data/training seeds gave 0.95–1.00; ClassificationSeedSweep checks three more, so 0.9 is not a lucky draw.
    internal const double RequiredAccuracy = 0.9;

    // Saving and loading copies F32 values exactly and runs the same kernels: any difference is a bug.
    private const float SaveLoadTolerance = 0f;

    // W + s·B·A summed once versus x·W + s·(x·A)·B: float rounding of the logits, then softmax.
    private const double MergeTolerance = 1e-4;

    // The same row alone or in a batch: a forward pass of at most 4 token rows takes the small-M GEMM kernel,
    // another summation order than the batched GEMM (measured up to 1.5e-5 of the logit for 1–5 token texts).
    private const double BatchTolerance = 1e-4;

    // Same F32 weights run by ONNX Runtime's kernels (another summation order): the exporter tests' bar.
    private const double OnnxTolerance = 1e-4;

    [Fact]
    public void FitThenTransformBeatsChanceOnHeldOutRows()
    {
        double accuracy = ClassificationPipelineFixture.Accuracy(fixture.Transformer, fixture.Test);
        Assert.True(accuracy >= RequiredAccuracy, $"held-out accuracy {accuracy:F3} < {RequiredAccuracy} (chance 0.5)");

        var losses = fixture.Transformer.TrainingResult!.StepLosses;
        Assert.True(losses[^1] < 0.1 * losses[0], $"loss {losses[0]:F3} → {losses[^1]:F3}");
        Assert.Equal(fixture.Options.Training.MaxSteps, fixture.Progress.Reports.Count);
    }

    [Fact]
    public void TransformAddsPredictedLabelAndAProbabilityVectorOfLengthK()
    {
        var output = fixture.Transformer.Transform(fixture.Test);

        Assert.Equal(["Text", "Label", "PredictedLabel", "Score"], output.Schema.Select(c => c.Name));
        Assert.Equal(typeof(int), output.GetColumnType("PredictedLabel"));
        Assert.Equal(typeof(float[]), output.GetColumnType("Score"));
        Assert.Equal(2, fixture.Transformer.NumLabels);
        Assert.Null(fixture.Transformer.LabelNames);
        var scores = output.GetColumn<float[]>("Score");
        var predicted = output.GetColumn<int>("PredictedLabel");
        for (int i = 0; i < scores.Count; i++)
        {
            Assert.Equal(2, scores[i].Length);
            Assert.All(scores[i], p => Assert.InRange(p, 0f, 1f));
            Assert.Equal(1.0, scores[i].Sum(), 5);
            Assert.Equal(Array.IndexOf(scores[i], scores[i].Max()), predicted[i]);
        }

        // A row's scores do not depend on its batch beyond float rounding: each row alone, short rows included,
        // gives what it got in a right-padded batch.
        var texts = fixture.Test.GetColumn<string>("Text").Take(12).Concat(["a", "ab", "the", "x y z"]).ToList();
        var batched = fixture.Transformer.PredictLogits(texts);
        for (int i = 0; i < texts.Count; i++)
        {
            var alone = fixture.Transformer.PredictLogits([texts[i]])[0];
            ReferenceModelTests.AssertClose(batched[i], alone, BatchTolerance, $"row {i} ('{texts[i]}') alone vs in a batch of {texts.Count}");
        }
    }

    [Fact]
    public void SavedAdapterLoadsBackWithIdenticalPredictions()
    {
        using var temp = new TempFolder();
        string dir = temp.File("adapter");
        fixture.Transformer.SaveAdapter(dir);

        Assert.Equal(["adapter"], temp.Entries());
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "labels.json"], Directory.GetFiles(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json"))))
        {
            Assert.Equal("SEQ_CLS", config.RootElement.GetProperty("task_type").GetString());
            Assert.Equal(["score"], config.RootElement.GetProperty("modules_to_save").EnumerateArray().Select(e => e.GetString()));
        }

        using var loaded = LoraTextClassificationTransformer.Load(dir, fixture.Options);
        AssertSamePredictions(fixture.Transformer, loaded, SaveLoadTolerance, "loaded");
    }

    [Fact]
    public void APeftSeqClsFolderWithoutLabelsJsonLoadsWithKFromItsScoreHead()
    {
        // PEFT's own save_pretrained writes only adapter_config.json and adapter_model.safetensors.
        using var temp = new TempFolder();
        string dir = temp.File("adapter");
        fixture.Transformer.SaveAdapter(dir);
        File.Delete(Path.Combine(dir, "labels.json"));

        using var loaded = LoraTextClassificationTransformer.Load(dir, fixture.Options);
        Assert.Equal(2, loaded.NumLabels);
        Assert.Null(loaded.LabelNames);
        AssertSamePredictions(fixture.Transformer, loaded, SaveLoadTolerance, "PEFT folder loaded");

        using var named = LoraTextClassificationTransformer.Load(dir, fixture.Options with { LabelNames = ["sport", "food"] });
        Assert.Equal(["sport", "food"], named.LabelNames);

        var wrongK = Assert.Throws<ArgumentException>(() => LoraTextClassificationTransformer.Load(dir, fixture.Options with { NumLabels = 3 }));
        Assert.Contains("NumLabels = 3 but the score head of the adapter", wrongK.Message);
        Assert.Contains("has 2 rows", wrongK.Message);

        // A causal-LM adapter folder has no score head to take K from.
        var causal = Assert.Throws<InvalidDataException>(() => LoraTextClassificationTransformer.Load(FixturePaths.Case("peft_llama_gqa"), fixture.Options));
        Assert.Contains("has no labels.json and its adapter_model.safetensors has no score head", causal.Message);
    }

    [Fact]
    public void MergedModelGivesIdenticalPredictedLabels()
    {
        using var temp = new TempFolder();
        fixture.Transformer.SaveAdapter(temp.File("adapter"));
        using var merged = LoraTextClassificationTransformer.Load(temp.File("adapter"), fixture.Options);

        merged.Merge();

        Assert.True(merged.IsMerged);
        Assert.Empty(merged.Model.Adapters());
        AssertSamePredictions(fixture.Transformer, merged, (float)MergeTolerance, "merged");
    }

    [Fact]
    public void ExportedOnnxGivesTheSameScoresInOnnxRuntime()
    {
        using var temp = new TempFolder();
        string path = temp.File("classifier.onnx");
        fixture.Transformer.ExportOnnx(path);

        // Rows of different lengths, right-padded: the exported graph pools at each row's last real token.
        var texts = fixture.Test.GetColumn<string>("Text").Take(6).ToList();
        var rows = texts.Select(fixture.Transformer.Encode).ToList();
        int t = rows.Max(r => r.Length);
        Assert.True(rows.Min(r => r.Length) < t, "the rows should need padding");
        var ids = new long[rows.Count * t];
        var mask = new long[rows.Count * t];
        for (int r = 0; r < rows.Count; r++)
        {
            for (int i = 0; i < rows[r].Length; i++)
            {
                ids[(r * t) + i] = rows[r][i];
                mask[(r * t) + i] = 1;
            }
        }

        var logits = OnnxRuntimeChecker.Run(path, new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64(ids, rows.Count, t),
            ["attention_mask"] = OnnxInput.Int64(mask, rows.Count, t),
        })["logits"];

        Assert.Equal([rows.Count, 2], logits.Dims);
        var ours = fixture.Transformer.PredictLogits(texts);
        ReferenceModelTests.AssertClose([.. ours.SelectMany(r => r)], logits.AsFloats(), OnnxTolerance, "ONNX Runtime class logits");
    }

    [Fact]
    public void StringLabelsBecomeSortedClassNamesThatTheAdapterFolderKeeps()
    {
        string[] names = ["animal", "vehicle", "colour"];
        var (texts, labels) = SyntheticTopics.Rows(48, 3, seed: 5);
        var data = TextTable.FromColumns(("Text", texts), ("Label", labels.Select(l => names[l]).ToArray()));
        var options = fixture.Options with { Training = fixture.Options.Training with { MaxSteps = 30 } };

        using var trained = new LoraTextClassificationEstimator(options).Fit(data);

        Assert.Equal(["animal", "colour", "vehicle"], trained.LabelNames);
        var output = trained.Transform(data);
        Assert.All(output.GetColumn<float[]>("Score"), s => Assert.Equal(3, s.Length));

        using var temp = new TempFolder();
        trained.SaveAdapter(temp.File("adapter"));
        using (var file = JsonDocument.Parse(File.ReadAllText(temp.File("adapter/labels.json"))))
        {
            Assert.Equal(3, file.RootElement.GetProperty("num_labels").GetInt32());
            Assert.Equal("colour", file.RootElement.GetProperty("id2label").GetProperty("1").GetString());
        }

        using var loaded = LoraTextClassificationTransformer.Load(temp.File("adapter"), options);
        Assert.Equal(trained.LabelNames, loaded.LabelNames);
        Assert.Equal(output.GetColumn<int>("PredictedLabel"), loaded.Transform(data).GetColumn<int>("PredictedLabel"));

        var mismatch = Assert.Throws<ArgumentException>(() => LoraTextClassificationTransformer.Load(temp.File("adapter"), options with { NumLabels = 2 }));
        Assert.Contains("trained with 3 classes", mismatch.Message);
    }

    [Fact]
    public void StringLabelsTrainExactlyAsTheirSortedClassIndices()
    {
        // Row order gives the names by occurrence (vehicle before animal); the classes are the sorted names.
        string[] names = ["vehicle", "animal"];
        var (texts, labels) = SyntheticTopics.Rows(32, 2, seed: 9);
        var options = fixture.Options with { Training = fixture.Options.Training with { MaxSteps = 6 } };
        using var byName = new LoraTextClassificationEstimator(options).Fit(TextTable.FromColumns(("Text", texts), ("Label", labels.Select(l => names[l]).ToArray())));
        int[] sortedIndex = labels.Select(l => l == 0 ? 1 : 0).ToArray();
        using var byIndex = new LoraTextClassificationEstimator(options).Fit(TextTable.FromColumns(("Text", texts), ("Label", sortedIndex)));

        // Training is deterministic for a fixed seed, so class k of the named run is class k of the indexed run.
        Assert.Equal(["animal", "vehicle"], byName.LabelNames);
        Assert.Equal(byIndex.TrainingResult!.StepLosses, byName.TrainingResult!.StepLosses);
        Assert.Equal(byIndex.PredictLogits(texts), byName.PredictLogits(texts));
    }

    [Fact]
    public void MaxSequenceLengthKeepsTheFirstTokensOfEveryText()
    {
        using var temp = new TempFolder();
        fixture.Transformer.SaveAdapter(temp.File("adapter"));
        const int MaxTokens = 4;
        using var cut = LoraTextClassificationTransformer.Load(temp.File("adapter"), fixture.Options with { MaxSequenceLength = MaxTokens });

        string text = "the quick brown fox jumps over the lazy dog";
        int[] full = fixture.Transformer.Encode(text);
        Assert.True(full.Length > MaxTokens + 2, "the text should be longer than the limit");
        Assert.Equal(full[..MaxTokens], cut.Encode(text));

        // Only the first MaxTokens tokens count: another tail gives the same logits, as does the prefix alone.
        string prefix = text[..(MaxTokens - (full.Length - text.Length))];
        string otherTail = prefix + "zzz qqq";
        Assert.Equal(full[..MaxTokens], fixture.Transformer.Encode(prefix));
        Assert.Equal(full[..MaxTokens], cut.Encode(otherTail));

        // One row per call, so every forward pass has the same shape and the logits are bit-identical.
        var logits = cut.PredictLogits([text])[0];
        Assert.Equal(logits, cut.PredictLogits([otherTail])[0]);
        Assert.Equal(fixture.Transformer.PredictLogits([prefix])[0], logits);
        Assert.NotEqual(fixture.Transformer.PredictLogits([text])[0], logits);
    }

    [Fact]
    public void ScoresAreProbabilitiesEvenWhenTheLogitsAreHuge()
    {
        using var temp = new TempFolder();
        fixture.Transformer.SaveAdapter(temp.File("adapter"));
        using var loud = LoraTextClassificationTransformer.Load(temp.File("adapter"), fixture.Options);

        // Logits in the thousands: exp overflows unless the softmax subtracts the row's maximum first.
        var head = loud.Model.LmHead.Weight.Value.AsF32();
        for (int i = 0; i < head.Length; i++)
        {
            head[i] *= 1e5f;
        }

        var texts = fixture.Test.GetColumn<string>("Text").Take(4).ToList();
        var logits = loud.PredictLogits(texts);
        var scores = loud.PredictScores(texts);
        Assert.Contains(logits, row => row.Max() - row.Min() > 1000);
        Assert.Contains(logits, row => Math.Abs(row.Max()) > 1000);
        for (int r = 0; r < texts.Count; r++)
        {
            double max = logits[r].Max(), sum = logits[r].Sum(l => Math.Exp(l - max));
            for (int k = 0; k < logits[r].Length; k++)
            {
                Assert.Equal(Math.Exp(logits[r][k] - max) / sum, scores[r][k], 1e-6);
            }
        }
    }

    [Fact]
    public void QloraClassifierTrainsItsHeadAndLoadsBackOntoTheQuantizedBase()
    {
        var options = fixture.Options with { Quantize = LoraQuantization.Nf4, Training = fixture.Options.Training with { MaxSteps = 40 } };
        using var trained = new LoraTextClassificationEstimator(options).Fit(fixture.Train);

        Assert.Equal(DType.NF4, trained.Model.Layers[0].Mlp.UpProj.Weight.Value.DType);
        Assert.Equal(DType.F32, trained.Model.LmHead.Weight.Value.DType);
        var losses = trained.TrainingResult!.StepLosses;
        Assert.True(losses[^1] < 0.5 * losses[0], $"QLoRA loss {losses[0]:F3} → {losses[^1]:F3}");

        using var temp = new TempFolder();
        trained.SaveAdapter(temp.File("adapter"));
        using var loaded = LoraTextClassificationTransformer.Load(temp.File("adapter"), options);
        AssertSamePredictions(trained, loaded, SaveLoadTolerance, "QLoRA loaded");
    }

    [Fact]
    public void BadColumnsAreReportedByNameBeforeTheModelLoads()
    {
        var estimator = new LoraTextClassificationEstimator(fixture.Options with { ModelPath = Path.Combine(fixture.Root, "no-such-model") });

        var missing = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Sentence", new[] { "a", "b" }), ("Label", new[] { 0, 1 }))));
        Assert.Contains("column 'Text' (LoraTextClassificationOptions.TextColumn) not found", missing.Message);

        var floatLabels = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Text", new[] { "a", "b" }), ("Label", new[] { 0f, 1f }))));
        Assert.Contains("column 'Label' (LoraTextClassificationOptions.LabelColumn) holds Single; expected int", floatLabels.Message);

        var negative = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Text", new[] { "a", "b", "c" }), ("Label", new[] { 0, 1, -1 }))));
        Assert.Contains("column 'Label' (LoraTextClassificationOptions.LabelColumn), row 2: label -1 is outside 0…1", negative.Message);

        var tooLarge = Assert.Throws<ArgumentException>(() => new LoraTextClassificationEstimator(estimator.Options with { NumLabels = 2 })
            .Fit(TextTable.FromColumns(("Text", new[] { "a", "b" }), ("Label", new[] { 0, 2 }))));
        Assert.Contains("row 1: label 2 is outside 0…1 (K = 2, NumLabels)", tooLarge.Message);

        var oneClass = Assert.Throws<ArgumentException>(() => estimator.Fit(TextTable.FromColumns(("Text", new[] { "a", "b" }), ("Label", new[] { "x", "x" }))));
        Assert.Contains("only one class ('x')", oneClass.Message);

        var unknownName = Assert.Throws<ArgumentException>(() => new LoraTextClassificationEstimator(estimator.Options with { LabelNames = ["neg", "pos"] })
            .Fit(TextTable.FromColumns(("Text", new[] { "a", "b" }), ("Label", new[] { "pos", "neutral" }))));
        Assert.Contains("row 1: label 'neutral' is not one of LabelNames [neg, pos]", unknownName.Message);

        var sameColumn = Assert.Throws<ArgumentException>(() => new LoraTextClassificationEstimator(estimator.Options with { LabelColumn = "Text" }));
        Assert.Contains("TextColumn and LabelColumn are both 'Text'", sameColumn.Message);

        var transform = Assert.Throws<ArgumentException>(() => fixture.Transformer.Transform(TextTable.FromColumns(("Text", new[] { 1 }))));
        Assert.Contains("column 'Text' (LoraTextClassificationOptions.TextColumn) holds Int32; expected String", transform.Message);
    }

    [Fact]
    public void CancellationStopsFitWithOperationCanceled()
    {
        using var cts = new CancellationTokenSource();
        var progress = new RecordingProgress<TrainingProgress>(p =>
        {
            if (p.Step == 3)
            {
                cts.Cancel();
            }
        });

        Assert.ThrowsAny<OperationCanceledException>(() => new LoraTextClassificationEstimator(fixture.Options).Fit(fixture.Train, progress, cts.Token));
        Assert.Equal(3, progress.Reports.Count);
    }

    private void AssertSamePredictions(LoraTextClassificationTransformer expected, LoraTextClassificationTransformer actual, float tolerance, string what)
    {
        var want = expected.Transform(fixture.Test);
        var got = actual.Transform(fixture.Test);
        Assert.Equal(want.GetColumn<int>("PredictedLabel"), got.GetColumn<int>("PredictedLabel"));
        var a = want.GetColumn<float[]>("Score");
        var b = got.GetColumn<float[]>("Score");
        for (int i = 0; i < a.Count; i++)
        {
            for (int k = 0; k < a[i].Length; k++)
            {
                Assert.True(Math.Abs(a[i][k] - b[i][k]) <= tolerance, $"{what}: row {i} class {k} probability {b[i][k]} vs {a[i][k]} (tolerance {tolerance})");
            }
        }
    }
}
