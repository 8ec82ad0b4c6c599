using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>
/// A sequence-classification adapter (PEFT SEQ_CLS, trained over a causal-LM base) works with the commands
/// that take --adapter: the base is loaded as a classifier with the adapter's class count, as
/// AutoModelForSequenceClassification.from_pretrained(base, num_labels=K) + PeftModel would.
/// </summary>
public sealed class ClassifierCommandTests
{
    private const int Classes = 3;

    // The merged model recomputes W + s·B·A once in F32; the adapted forward adds the two products instead.
    // Both round differently at F32 epsilon on logits of order 1; 1e-4 of the logit scale leaves ~100× room.
    private const double MergeTolerance = 1e-4;

    private static readonly string Model = FixturePaths.Case("llama_gqa");

    [Fact]
    public void MergeAndExportOnnxAcceptAClassifierAdapterOverACausalBase()
    {
        using var tmp = new TempDir();
        string adapter = Path.Combine(tmp.Path, "adapter"), merged = Path.Combine(tmp.Path, "merged"), onnx = Path.Combine(tmp.Path, "clf.onnx");
        var rows = Enumerable.Range(0, 6).Select(i => Enumerable.Range(3 + i, 4 + i).ToArray()).ToList();
        float[][] expected;
        using (var trained = LlamaForCausalLM.LoadForSequenceClassification(Model, Classes, seed: 5))
        {
            trained.AddAdapter(new LoraOptions { Rank = 2 }, seed: 1);
            using (var trainer = new Trainer(trained, new TrainingOptions { LearningRate = 1e-2, MaxSteps = 3, BatchSize = 3, WarmupRatio = 0 }))
            {
                trainer.Train(rows.Select((ids, i) => SequenceClassification.TrainingRow(ids, i % Classes, i + 1)).ToList());
            }

            trained.SaveAdapter(adapter);
            expected = SequenceClassification.Logits(trained, rows);
        }

        var (exit, output, error) = CliRunner.Run("merge", "--model", Model, "--adapter", adapter, "--out", merged, "--dtype", "f32");
        Assert.True(exit == 0, error);
        Assert.Contains("merged", output, StringComparison.Ordinal);
        using (var loaded = LlamaForCausalLM.Load(merged))
        {
            Assert.Equal(Classes, loaded.Config.NumLabels);
            var actual = SequenceClassification.Logits(loaded, rows);
            double scale = expected.SelectMany(static r => r).Max(static x => Math.Abs((double)x));
            for (int r = 0; r < rows.Count; r++)
            {
                for (int k = 0; k < Classes; k++)
                {
                    Assert.True(Math.Abs(actual[r][k] - expected[r][k]) <= MergeTolerance * scale, $"row {r}, class {k}: merged {actual[r][k]} vs adapted {expected[r][k]}");
                }
            }
        }

        (exit, output, error) = CliRunner.Run("export-onnx", "--model", Model, "--adapter", adapter, "--out", onnx);
        Assert.True(exit == 0, error);
        Assert.StartsWith("wrote ", output, StringComparison.Ordinal);
        Assert.True(new FileInfo(onnx).Length > 10_000);
    }
}
