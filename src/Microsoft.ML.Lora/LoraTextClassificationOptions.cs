namespace Microsoft.ML.Lora;

/// <summary>
/// Options of <see cref="LoraTextClassificationEstimator"/>: text classification with a Llama-family body
/// adapted by LoRA (or QLoRA) and a <c>score</c> head trained fully, Hugging Face's
/// <c>LlamaForSequenceClassification</c> shape. Immutable; <see cref="Validate"/> throws
/// <see cref="ArgumentException"/> naming the option and the value.
/// </summary>
public sealed record LoraTextClassificationOptions : LoraFineTuningOptions
{
    /// <summary>Input text column (string). Default "Text".</summary>
    public string TextColumn { get; init; } = "Text";

    /// <summary>
    /// Label column: <c>int</c> class indices 0…K−1, or <c>string</c> class names (mapped through
    /// <see cref="LabelNames"/>). Default "Label". Read by Fit only.
    /// </summary>
    public string LabelColumn { get; init; } = "Label";

    /// <summary>Column Transform adds with the predicted class index (int, 0…K−1). Default "PredictedLabel".</summary>
    public string PredictedLabelColumn { get; init; } = "PredictedLabel";

    /// <summary>Column Transform adds with the class probabilities (float[K], softmax of the logits). Default "Score".</summary>
    public string ScoreColumn { get; init; } = "Score";

    /// <summary>Number of classes K; null (default) = the count of <see cref="LabelNames"/>, else one more than the largest int label, else the distinct string labels.</summary>
    public int? NumLabels { get; init; }

    /// <summary>
    /// Class names in index order (HF <c>id2label</c>). Null (default): for string labels, the distinct
    /// names sorted ordinally (so the order does not depend on row order); for int labels, none.
    /// Saved with the adapter and restored by Load.
    /// </summary>
    public IReadOnlyList<string>? LabelNames { get; init; }

    /// <summary>Texts are truncated to their first this many tokens, in training and prediction. Default 512.</summary>
    public int MaxSequenceLength { get; init; } = 512;

    /// <summary>Rows per forward pass when predicting. Default 8.</summary>
    public int PredictionBatchSize { get; init; } = 8;

    /// <inheritdoc/>
    public override void Validate()
    {
        const string owner = nameof(LoraTextClassificationOptions);
        base.Validate();
        RequireColumnName(nameof(TextColumn), TextColumn);
        RequireColumnName(nameof(LabelColumn), LabelColumn);
        RequireColumnName(nameof(PredictedLabelColumn), PredictedLabelColumn);
        RequireColumnName(nameof(ScoreColumn), ScoreColumn);
        if (TextColumn == LabelColumn)
        {
            throw new ArgumentException($"{owner}.TextColumn and LabelColumn are both '{TextColumn}'; the label needs its own column", nameof(LabelColumn));
        }

        if (PredictedLabelColumn == ScoreColumn)
        {
            throw new ArgumentException($"{owner}.PredictedLabelColumn and ScoreColumn are both '{ScoreColumn}'; each output needs its own column", nameof(ScoreColumn));
        }

        if (NumLabels is < 2)
        {
            throw new ArgumentException($"{owner}.NumLabels = {NumLabels} is invalid: expected null (infer) or at least 2 classes", nameof(NumLabels));
        }

        if (LabelNames is not null)
        {
            if (LabelNames.Count < 2 || LabelNames.Any(string.IsNullOrEmpty) || LabelNames.Distinct(StringComparer.Ordinal).Count() != LabelNames.Count)
            {
                throw new ArgumentException($"{owner}.LabelNames = [{string.Join(", ", LabelNames)}] is invalid: expected at least 2 distinct, non-empty names", nameof(LabelNames));
            }

            if (NumLabels is int k && k != LabelNames.Count)
            {
                throw new ArgumentException($"{owner}.NumLabels = {k} but LabelNames has {LabelNames.Count} names", nameof(NumLabels));
            }
        }

        if (MaxSequenceLength < 1)
        {
            throw new ArgumentException($"{owner}.MaxSequenceLength = {MaxSequenceLength} is invalid: expected at least 1", nameof(MaxSequenceLength));
        }

        if (PredictionBatchSize < 1)
        {
            throw new ArgumentException($"{owner}.PredictionBatchSize = {PredictionBatchSize} is invalid: expected at least 1", nameof(PredictionBatchSize));
        }
    }
}
