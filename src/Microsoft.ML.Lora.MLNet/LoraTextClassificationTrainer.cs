using Microsoft.ML.Data;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// ML.NET estimator that fine-tunes a Llama-family model for text classification with LoRA or QLoRA
/// (Hugging Face's ForSequenceClassification shape). <see cref="LoraTrainerBase{TOptions, TTransformer}.Fit"/> reads the text column
/// (<see cref="LoraTextClassificationOptions.TextColumn"/>, String) and the key-typed label column
/// (<see cref="LoraTextClassificationOptions.LabelColumn"/>, as <c>MapValueToKey</c> makes it: key k is class k − 1)
/// and trains with <see cref="LoraTextClassificationEstimator"/>. Made by
/// <c>mlContext.MulticlassClassification.Trainers.LoraTextClassification(options)</c>.
/// </summary>
public sealed class LoraTextClassificationTrainer : LoraTrainerBase<LoraTextClassificationOptions, LoraTextClassificationPredictionTransformer>
{
    /// <summary>A trainer with <paramref name="options"/> (validated here).</summary>
    /// <param name="options">Model, adapter, training and column options. NumLabels, when set, must equal the label's key count; LabelNames are taken from the label's KeyValues when those are text.</param>
    /// <param name="progress">Receives one report per optimizer step during Fit.</param>
    /// <param name="cancellationToken">Cancels Fit (between micro-batches).</param>
    /// <exception cref="ArgumentException">An invalid option; the message names it.</exception>
    public LoraTextClassificationTrainer(LoraTextClassificationOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
        : base(options, progress, cancellationToken)
    {
    }

    /// <summary>
    /// Reads the text and key-label columns in one row-cursor pass and trains an adapter on them.
    /// </summary>
    private protected override LoraTextClassificationPredictionTransformer FitCore(IDataView input)
    {
        ColumnChecks.Text(input.Schema, "input", Options.TextColumn);
        var labelColumn = ColumnChecks.Key(input.Schema, "label", Options.LabelColumn, out int keyCount);
        if (Options.NumLabels is int k && k != keyCount)
        {
            throw SchemaErrors.Mismatch("label", Options.LabelColumn, $"Key<UInt32, 0-{k - 1}> (NumLabels = {k})", labelColumn.Type.ToString());
        }

        // Text KeyValues become the class names saved with the adapter; given LabelNames must then match the key count.
        string[]? names = ClassificationScorer.TextKeyValues(labelColumn.Annotations);
        var options = Options with { NumLabels = keyCount, LabelNames = names ?? Options.LabelNames };
        options.Validate();
        var (texts, labels) = DataViewColumns.Read(input, [("input", Options.TextColumn)], ("label", Options.LabelColumn), CancellationToken, out _);
        var table = TextTable.FromColumns((options.TextColumn, texts[0]), (options.LabelColumn, labels));
        var model = new LoraTextClassificationEstimator(options).Fit(table, Progress, CancellationToken);
        return new LoraTextClassificationPredictionTransformer(model, labelColumn.Annotations);
    }

    /// <summary>
    /// PredictedLabel (key, with the label's KeyValues) and Score (vector of Single, annotated as a
    /// multiclass score), after checking the text and label columns.
    /// </summary>
    private protected override SchemaShape.Column[] OutputColumns(SchemaShape inputSchema)
    {
        ColumnChecks.Text(inputSchema, "input", Options.TextColumn);
        var label = ColumnChecks.Key(inputSchema, "label", Options.LabelColumn);
        var keyValues = label.Annotations.FirstOrDefault(static a => a.Name == AnnotationNames.KeyValues);
        bool hasKeyValues = keyValues.Name is not null;
        var kinds = new[] { ShapeColumns.ScalarText(AnnotationNames.ScoreColumnKind), ShapeColumns.ScalarText(AnnotationNames.ScoreValueKind) };
        var predictedAnnotations = hasKeyValues ? kinds.Prepend(keyValues) : kinds;
        var scoreAnnotations = hasKeyValues && keyValues.ItemType is TextDataViewType
            ? kinds.Prepend(ShapeColumns.Create(AnnotationNames.SlotNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false))
            : kinds;
        return
        [
            ShapeColumns.Create(Options.PredictedLabelColumn, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, predictedAnnotations),
            ShapeColumns.Create(Options.ScoreColumn, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, scoreAnnotations),
        ];
    }
}
