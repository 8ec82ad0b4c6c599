using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Training;

/// <summary>Mean token cross-entropy of a model over tokenized rows.</summary>
public static class Evaluator
{
    /// <summary>
    /// Runs the model over <paramref name="rows"/> in batches of <paramref name="batchSize"/> rows (in
    /// file order, right-padded per batch) and sums the loss over every counted token.
    /// </summary>
    public static LossResult Evaluate(LlamaForCausalLM model, IReadOnlyList<TokenRow> rows, int batchSize, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        }

        var total = default(LossResult);
        for (int start = 0; start < rows.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var slice = rows.Skip(start).Take(batchSize).ToList();
            var batch = CausalLmBatch.FromRows(slice.Select(r => r.InputIds).ToList(), slice.Select(r => r.Labels).ToList());
            total += model.Forward(batch);
            progress?.Report(start + slice.Count);
        }

        return total;
    }
}
