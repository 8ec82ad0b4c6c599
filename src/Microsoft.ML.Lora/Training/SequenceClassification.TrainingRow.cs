using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Models;

/// <summary>Training rows of a classifier (this part lives with the training layer, whose row type it builds).</summary>
public static partial class SequenceClassification
{
    /// <summary>
    /// A row the <see cref="Trainer"/> and <see cref="Evaluator"/> train and score a classifier on: its loss is
    /// Hugging Face's cross-entropy of the logits at the row's last token against <paramref name="label"/>, and
    /// a batch's loss is the mean over its rows. Built on the causal-LM shift (the logits at position t are
    /// scored against label t+1): one more token follows the text, carrying the label, and every other label is
    /// −100; under causal attention that token cannot change any earlier position. Truncation to
    /// <see cref="TrainingOptions.MaxSequenceLength"/> keeps the first MaxSequenceLength tokens of the text and
    /// the label; packing is refused for classifiers. The label's range is checked against the model's
    /// NumLabels when training starts (naming <paramref name="line"/>).
    /// </summary>
    /// <param name="inputIds">Token ids of the text (at least one).</param>
    /// <param name="label">Class id, 0 … NumLabels − 1.</param>
    /// <param name="line">Row number for error messages.</param>
    /// <exception cref="ArgumentException"><paramref name="inputIds"/> is empty or <paramref name="label"/> is negative.</exception>
    public static TokenRow TrainingRow(int[] inputIds, int label, int line = 0)
    {
        ArgumentNullException.ThrowIfNull(inputIds);
        if (inputIds.Length == 0)
        {
            throw new ArgumentException($"row {line}: input_ids is empty; a classified text needs at least one token", nameof(inputIds));
        }

        if (label < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(label), label, $"row {line}: label {label} is negative; expected a class id 0 … NumLabels − 1");
        }

        return Build(inputIds, inputIds.Length, label, line);
    }

    /// <summary>Whether <paramref name="row"/> has the layout of <see cref="TrainingRow"/>: labels all −100 but the last, which is not.</summary>
    internal static bool IsTrainingRow(TokenRow row)
    {
        if (row.Labels is not { Length: >= 2 } labels || labels.Length != row.InputIds.Length || row.Positions is not null || labels[^1] == CrossEntropy.IgnoreIndex)
        {
            return false;
        }

        for (int i = 0; i < labels.Length - 1; i++)
        {
            if (labels[i] != CrossEntropy.IgnoreIndex)
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>A <see cref="TrainingRow"/> row with its text cut to <paramref name="maxTextLength"/> tokens (the label kept).</summary>
    internal static TokenRow Truncate(TokenRow row, int maxTextLength) =>
        Build(row.InputIds, Math.Min(maxTextLength, row.InputIds.Length - 1), row.Labels![^1], row.Line);

    /// <summary>The class label of a <see cref="TrainingRow"/> row.</summary>
    internal static int LabelOf(TokenRow row) => row.Labels![^1];

    private static TokenRow Build(int[] ids, int textLength, int label, int line)
    {
        // The extra token repeats the last text token: any vocabulary id would do, this one is always valid.
        var rowIds = new int[textLength + 1];
        Array.Copy(ids, rowIds, textLength);
        rowIds[textLength] = ids[textLength - 1];
        var labels = new int[textLength + 1];
        Array.Fill(labels, CrossEntropy.IgnoreIndex);
        labels[textLength] = label;
        return new TokenRow(rowIds, labels, line);
    }
}
