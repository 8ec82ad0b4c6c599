using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// A tiny Llama and a learnable synthetic task for trainer tests: each row starts at a random token
/// and continues by a fixed random permutation π of the vocabulary (next = π(previous)), so every
/// target is a function of the token before it. An untrained model sits near ln V; a model that
/// learned π predicts every target.
/// </summary>
internal static class TrainingTestData
{
    public const int Vocab = 32;

    public static LlamaConfig Config(int hidden = 32) =>
        LlamaConfig.Create(vocabSize: Vocab, hiddenSize: hidden, intermediateSize: 2 * hidden, numHiddenLayers: 1, numAttentionHeads: 4, numKeyValueHeads: 2);

    /// <summary>A fresh tiny model with every parameter trainable (full fine-tuning).</summary>
    public static LlamaForCausalLM Model(int seed = 1, int hidden = 32)
    {
        var model = LlamaForCausalLM.CreateRandom(Config(hidden), seed: seed).OnTestBackend();
        model.SetTrainable(true);
        return model;
    }

    /// <summary>The fixed permutation of the task.</summary>
    public static int[] Permutation { get; } = MakePermutation(12345);

    /// <summary><paramref name="count"/> rows of 6–12 tokens following π; lines numbered from <paramref name="firstLine"/>.</summary>
    public static List<TokenRow> Rows(int count, int seed, int firstLine = 1)
    {
        var random = new Random(seed);
        var rows = new List<TokenRow>();
        for (int r = 0; r < count; r++)
        {
            var ids = new int[random.Next(6, 13)];
            ids[0] = random.Next(Vocab);
            for (int i = 1; i < ids.Length; i++)
            {
                ids[i] = Permutation[ids[i - 1]];
            }

            rows.Add(new TokenRow(ids, null, firstLine + r));
        }

        return rows;
    }

    /// <summary>Fraction of counted targets of <paramref name="rows"/> that the model's argmax predicts.</summary>
    public static double Accuracy(LlamaForCausalLM model, IReadOnlyList<TokenRow> rows)
    {
        var batch = CausalLmBatch.FromRows(rows.Select(r => r.InputIds).ToList(), rows.Select(r => r.Labels).ToList());
        using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, Vocab);
        model.Forward(batch, logits);
        var values = logits.AsF32();
        int counted = 0, right = 0;
        for (int i = 0; i < batch.Targets.Length; i++)
        {
            if (batch.Targets[i] == CrossEntropy.IgnoreIndex)
            {
                continue;
            }

            var row = values.Slice(i * Vocab, Vocab);
            int best = 0;
            for (int v = 1; v < Vocab; v++)
            {
                best = row[v] > row[best] ? v : best;
            }

            counted++;
            right += best == batch.Targets[i] ? 1 : 0;
        }

        return (double)right / counted;
    }

    /// <summary>Copies of every trainable parameter's values, by name.</summary>
    public static Dictionary<string, float[]> Snapshot(LlamaForCausalLM model) =>
        model.TrainableParameters().ToDictionary(p => p.Name, p => p.Value.ToFloatArray());

    /// <summary>A fresh temporary folder.</summary>
    public static string TempDirectory()
    {
        string path = Path.Combine(Path.GetTempPath(), "lora-trainer-tests", Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(path);
        return path;
    }

    private static int[] MakePermutation(int seed)
    {
        var random = new Random(seed);
        var p = Enumerable.Range(0, Vocab).ToArray();
        random.Shuffle(p);
        return p;
    }
}

/// <summary>Collects reports synchronously (Progress&lt;T&gt; would post them to a thread pool).</summary>
internal sealed class ProgressLog(Action<TrainingProgress>? onReport = null) : IProgress<TrainingProgress>
{
    public List<TrainingProgress> Reports { get; } = [];

    public void Report(TrainingProgress value)
    {
        Reports.Add(value);
        onReport?.Invoke(value);
    }
}
