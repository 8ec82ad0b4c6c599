using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Training;

/// <summary>Mean token cross-entropy of a model over tokenized rows.</summary>
public static class Evaluator
{
    /// <summary>
    /// Runs the model over <paramref name="rows"/> in batches of <paramref name="batchSize"/> rows (in
    /// file order, right-padded per batch) and sums the loss over every counted token.
    /// </summary>
    /// <exception cref="ArgumentException">A row has more tokens than the model has positions (named by its line).</exception>
    /// <param name="model">The model.</param>
    /// <param name="rows">Rows in file order.</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    /// <param name="progress">Receives the rows done after each batch.</param>
    /// <param name="cancellationToken">Checked before each batch.</param>
    /// <param name="maxRowTokens">The longest row accepted; default the model's max_position_embeddings.</param>
    public static LossResult Evaluate(LlamaForCausalLM model, IReadOnlyList<TokenRow> rows, int batchSize, IProgress<int>? progress = null, CancellationToken cancellationToken = default, int? maxRowTokens = null)
    {
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        }

        // Attention is quadratic in the row: a row past the model's positions is refused before any work.
        int limit = maxRowTokens ?? model.Config.MaxPositionEmbeddings;
        if (rows.FirstOrDefault(r => r.InputIds.Length > limit) is { } tooLong)
        {
            string what = maxRowTokens is null ? $"the model's max_position_embeddings {limit}" : $"the {limit} allowed";
            throw new ArgumentException($"line {tooLong.Line}: {tooLong.InputIds.Length} tokens, more than {what}; shorten or split the row", nameof(rows));
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
