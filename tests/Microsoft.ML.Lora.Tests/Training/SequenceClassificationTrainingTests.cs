using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>The trainer, evaluator and checkpoints on a classifier fed <see cref="SequenceClassification.TrainingRow"/> rows.</summary>
public sealed class SequenceClassificationTrainingTests : IDisposable
{
    private readonly string root = TrainingTestData.TempDirectory();

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void LoraTrainingOnASeparableToyTaskLowersTheLossAndClassifiesHeldOutRows()
    {
        // Class 0 texts use tokens 0–15, class 1 tokens 16–31: separable from any token, so a few steps suffice.
        using var model = Classifier();
        model.AddAdapter(new LoraOptions { Rank = 4, Alpha = 8 }, seed: 1);
        var (train, trainLabels) = Toy(48, seed: 2);
        var (test, testLabels) = Toy(24, seed: 3);
        var rows = train.Select((ids, i) => SequenceClassification.TrainingRow(ids, trainLabels[i], i + 1)).ToList();
        var validation = test.Select((ids, i) => SequenceClassification.TrainingRow(ids, testLabels[i], 1001 + i)).ToList();
        double before = Evaluator.Evaluate(model, validation, 8).Mean;

        using var trainer = new Trainer(model, new TrainingOptions { LearningRate = 1e-2, BatchSize = 8, Epochs = 6, WarmupSteps = 0, Seed = 4 });
        var result = trainer.Train(rows, validation);

        // Mean cross entropy starts near ln 2 (random head, N(0, 0.02²)) and must fall well below it.
        Assert.InRange(before, 0.6, 0.8);
        Assert.True(result.LastValidationLoss < 0.5 * before, $"validation loss {before} -> {result.LastValidationLoss}");
        // Every training text is classified right, and held-out texts (chance: 12 of 24) nearly all.
        Assert.Equal(train.Count, Correct(model, train, trainLabels));
        Assert.InRange(Correct(model, test, testLabels), 22, test.Count);
    }

    [Fact]
    public void LabelOutsideTheHeadIsAnErrorNamingRowAndValue()
    {
        using var model = Classifier();
        model.SetTrainable(true);
        using var trainer = new Trainer(model, new TrainingOptions { MaxSteps = 1 });
        var rows = new[] { SequenceClassification.TrainingRow([1, 2, 3], 1, 6), SequenceClassification.TrainingRow([4, 5], 2, 7) };
        var e = Assert.Throws<ArgumentException>(() => trainer.Train(rows));
        Assert.Contains("training row at line 7: label 2 is outside the model's classes [0, 2)", e.Message, StringComparison.Ordinal);

        var v = Assert.Throws<ArgumentException>(() => trainer.Train(rows.Take(1).ToList(), [SequenceClassification.TrainingRow([1], 9, 55)]));
        Assert.Contains("validation row at line 55: label 9", v.Message, StringComparison.Ordinal);

        var lm = Assert.Throws<ArgumentException>(() => trainer.Train([new TokenRow([1, 2, 3], null, 12)]));
        Assert.Contains("line 12", lm.Message, StringComparison.Ordinal);
        Assert.Contains("not a classification row", lm.Message, StringComparison.Ordinal);

        Assert.Throws<ArgumentOutOfRangeException>(() => SequenceClassification.TrainingRow([1, 2], -1, 3));
        Assert.Contains("row 4", Assert.Throws<ArgumentException>(() => SequenceClassification.TrainingRow([], 0, 4)).Message, StringComparison.Ordinal);

        // A batch built by hand is checked by the model against its head too.
        var batch = CausalLmBatch.FromRows([[1, 2, 2]], [[-100, -100, 5]]);
        var f = Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(batch));
        Assert.Contains("label 5 is outside the classes [0, 2)", f.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void PackingIsRefusedForAClassifier()
    {
        using var model = Classifier();
        model.SetTrainable(true);
        using var trainer = new Trainer(model, new TrainingOptions { MaxSteps = 1, Packing = true });
        var e = Assert.Throws<ArgumentException>(() => trainer.Train([SequenceClassification.TrainingRow([1, 2, 3], 1)]));
        Assert.Contains("Packing", e.Message, StringComparison.Ordinal);
        Assert.Contains("sequence classifier", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentException>(() => trainer.Train(() => [SequenceClassification.TrainingRow([1, 2, 3], 1)]));
    }

    [Fact]
    public void TruncationCutsTheTextAndKeepsTheLabel()
    {
        var options = new TrainingOptions { MaxSequenceLength = 4, Shuffle = false };
        var row = SequenceClassification.TrainingRow([5, 6, 7, 8, 9, 10, 11], 1, 3);
        var data = TrainingData.Prepare([row, SequenceClassification.TrainingRow([1, 2, 3, 4], 0, 4)], null, options, TrainingTestData.Vocab, numLabels: 2);
        Assert.Equal(1, data.TruncatedRows);
        Assert.Equal(SequenceClassification.TrainingRow([5, 6, 7, 8], 1, 3), data.Train[0], TokenRowComparer.Instance);
        Assert.Equal(SequenceClassification.TrainingRow([1, 2, 3, 4], 0, 4), data.Train[1], TokenRowComparer.Instance);

        // The loss of the truncated row is that of the first four tokens classified.
        using var model = Classifier();
        var batch = data.MicroBatches(0, out _, out _)[0].Batch;
        var logits = SequenceClassification.Logits(model, [[5, 6, 7, 8], [1, 2, 3, 4]]);
        double expected = (Nll(logits[0], 1) + Nll(logits[1], 0)) / 2;
        Assert.Equal(expected, model.Forward(batch).Mean, 1e-5);
    }

    [Fact]
    public void CheckpointResumeOfAClassifierContinuesBitForBit()
    {
        var (texts, labels) = Toy(12, seed: 8);
        var rows = texts.Select((ids, i) => SequenceClassification.TrainingRow(ids, labels[i], i + 1)).ToList();
        var options = new TrainingOptions { LearningRate = 1e-2, BatchSize = 4, MaxSteps = 6, WarmupSteps = 1, CheckpointEverySteps = 3, Seed = 5, EvalEverySteps = 3 };
        var validation = rows.Take(4).ToList();

        Dictionary<string, float[]> straight;
        using (var model = Classifier())
        {
            model.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 1);
            using var trainer = new Trainer(model, options with { CheckpointDirectory = Path.Combine(root, "a") });
            trainer.Train(rows, validation);
            straight = TrainingTestData.Snapshot(model);
        }

        Assert.Contains("score.weight", straight.Keys);
        // The same frozen base; another adapter init and head, so the values must come from the checkpoint.
        using (var model = Classifier())
        {
            model.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.1 }, seed: 9);
            model.LmHead.Weight.Value.AsF32().Fill(0.5f);
            using var trainer = Trainer.Resume(model, Path.Combine(root, "a", "checkpoint-3"));
            trainer.Train(rows, validation);
            var resumed = TrainingTestData.Snapshot(model);
            Assert.Equal(straight.Keys, resumed.Keys);
            foreach (var (name, values) in straight)
            {
                Assert.True(values.AsSpan().SequenceEqual(resumed[name]), $"{name} differs after resume");
            }
        }
    }

    private static LlamaForCausalLM Classifier(int seed = 1) => LlamaForCausalLM.CreateRandom(TrainingTestData.Config().ForSequenceClassification(2), seed: seed);

    private static int Correct(LlamaForCausalLM model, List<int[]> texts, int[] labels) =>
        SequenceClassification.Logits(model, texts, batchSize: 5).Select((l, i) => (l[1] > l[0] ? 1 : 0) == labels[i] ? 1 : 0).Sum();

    private static (List<int[]> Texts, int[] Labels) Toy(int count, int seed)
    {
        var random = new Random(seed);
        var texts = new List<int[]>();
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            labels[i] = i % 2;
            texts.Add(Enumerable.Range(0, random.Next(3, 9)).Select(_ => (labels[i] * 16) + random.Next(16)).ToArray());
        }

        return (texts, labels);
    }

    private static double Nll(float[] logits, int label)
    {
        double max = logits.Max();
        double sum = logits.Sum(x => Math.Exp(x - max));
        return -(logits[label] - max - Math.Log(sum));
    }

    private sealed class TokenRowComparer : IEqualityComparer<TokenRow>
    {
        public static readonly TokenRowComparer Instance = new();

        public bool Equals(TokenRow? x, TokenRow? y) =>
            x is not null && y is not null && x.InputIds.SequenceEqual(y.InputIds) && x.Labels!.SequenceEqual(y.Labels!) && x.Line == y.Line;

        public int GetHashCode(TokenRow obj) => obj.Line;
    }
}
