using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// Sequence classification in Hugging Face's <c>…ForSequenceClassification</c> shape: the decoder body,
/// then a <c>score</c> head (NumLabels, C) without bias applied at each row's last token. A model is a
/// classifier when its config has <see cref="LlamaConfig.NumLabels"/>. Rows are right-padded and each row's
/// length is known, so the pooled position is the row's last token whatever the padding id (transformers
/// finds it from <c>pad_token_id</c>, which gives the same position when the text holds no padding id).
/// </summary>
public static partial class SequenceClassification
{
    /// <summary>Module path of the classification head (Hugging Face's and PEFT's name).</summary>
    public const string HeadName = "score";

    /// <summary>Checkpoint key of the classification head's weight.</summary>
    public const string HeadWeightName = "score.weight";

    /// <summary>
    /// Class scores (logits before softmax) of each row, pooled at its last token: [rows][NumLabels]. Rows
    /// are run in batches of <paramref name="batchSize"/> (in order, right-padded per batch) with adapters as
    /// they are (active, disabled or merged); no truncation: cut long rows first.
    /// </summary>
    /// <param name="model">A classifier (config with NumLabels).</param>
    /// <param name="rows">Token ids per row (each at least one token).</param>
    /// <param name="batchSize">Rows per forward pass.</param>
    /// <param name="cancellationToken">Checked before every batch.</param>
    /// <exception cref="ArgumentException">The model is not a classifier, or a row is empty or holds an id outside the vocabulary.</exception>
    public static float[][] Logits(LlamaForCausalLM model, IReadOnlyList<int[]> rows, int batchSize = 8, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(rows);
        int k = RequireClassifier(model);
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        }

        var result = new float[rows.Count][];
        for (int start = 0; start < rows.Count; start += batchSize)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int count = Math.Min(batchSize, rows.Count - start);
            var slice = new int[count][];
            var ignored = new int[]?[count];
            for (int r = 0; r < count; r++)
            {
                slice[r] = rows[start + r] ?? throw new ArgumentNullException(nameof(rows), $"row {start + r} is null");
                ignored[r] = Enumerable.Repeat(CrossEntropy.IgnoreIndex, slice[r].Length).ToArray();
            }

            var batch = CausalLmBatch.FromRows(slice, ignored, firstRowNumber: start);
            using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, k);
            model.Forward(batch, logits);
            var all = logits.AsF32();
            for (int r = 0; r < count; r++)
            {
                // logits (B·T, K): row r's last token is at r·T + len − 1.
                int last = (r * batch.T) + slice[r].Length - 1;
                result[start + r] = all.Slice(last * k, k).ToArray();
            }
        }

        return result;
    }

    /// <summary>NumLabels of <paramref name="model"/>; a clear error for a causal LM.</summary>
    internal static int RequireClassifier(LlamaForCausalLM model) =>
        model.Config.NumLabels ?? throw new ArgumentException($"the model is a causal LM ({model.Config.Architecture}); sequence classification needs a classifier: load it with LlamaForCausalLM.LoadForSequenceClassification(dir, numLabels) or a config with NumLabels", nameof(model));
}
