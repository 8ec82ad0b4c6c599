using Microsoft.ML.Data;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// ML.NET transformer of a LoRA text classifier: <see cref="Transform"/> returns a lazy view that adds
/// PredictedLabel (key, k = class k − 1, with the label's KeyValues) and Score (K class probabilities),
/// scoring in batches of <see cref="LoraTextClassificationOptions.PredictionBatchSize"/> rows when cursored.
/// Row-to-row, so PredictionEngine works. It cannot be saved into an ML.NET model zip: use
/// <see cref="SaveAdapter"/> and <see cref="Load"/>. Dispose it to free the model.
/// </summary>
public sealed class LoraTextClassificationPredictionTransformer : ITransformer, IDisposable
{
    private readonly ClassificationScorer scorer;

    internal LoraTextClassificationPredictionTransformer(LoraTextClassificationTransformer model, DataViewSchema.Annotations? labelAnnotations)
    {
        Model = model;
        scorer = new ClassificationScorer(model, labelAnnotations);
    }

    /// <summary>The plain transformer underneath (scores, adapter, merge, ONNX).</summary>
    public LoraTextClassificationTransformer Model { get; }

    /// <summary>Number of classes K (the label's key count).</summary>
    public int NumLabels => Model.NumLabels;

    /// <summary>True: each row is scored from its own text.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>
    /// Loads the base model of <paramref name="options"/> and the adapter saved by <see cref="SaveAdapter"/>.
    /// PredictedLabel's KeyValues are the label names saved with the adapter (the label's text KeyValues at Fit).
    /// </summary>
    public static LoraTextClassificationPredictionTransformer Load(string adapterDirectory, LoraTextClassificationOptions options) =>
        new(LoraTextClassificationTransformer.Load(adapterDirectory, options), null);

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The text column is missing or not String; the message names it.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => scorer.OutputSchema(inputSchema);

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The text column is missing or not String; the message names it.</exception>
    public IDataView Transform(IDataView input) => new ScoredDataView(input, scorer);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoredRowMapper(inputSchema, scorer);

    /// <summary>Writes the adapter (PEFT layout, with the score head and label names); see <see cref="LoraTextClassificationTransformer.SaveAdapter"/>.</summary>
    public void SaveAdapter(string directory) => Model.SaveAdapter(directory);

    /// <summary>Folds the adapter into the base weights; predictions stay the same up to float rounding.</summary>
    public void Merge() => Model.Merge();

    /// <summary>Exports the classifier (adapter merged) as ONNX with output <c>logits</c> [B, K].</summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Model.ExportOnnx(path, options);

    /// <summary>Always throws: an ML.NET model zip cannot hold this transformer.</summary>
    /// <exception cref="NotSupportedException">Always; the message says what to use instead.</exception>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw SaveNotSupported.For(nameof(LoraTextClassificationPredictionTransformer));

    /// <inheritdoc/>
    public void Dispose() => Model.Dispose();
}
