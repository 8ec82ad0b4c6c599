using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// ML.NET transformer of a LoRA text classifier: <see cref="LoraPredictionTransformerBase{TModel}.Transform"/>
/// returns a lazy view that adds PredictedLabel (key, k = class k − 1, with the label's KeyValues) and Score
/// (K class probabilities), scoring in batches of <see cref="LoraTextClassificationOptions.PredictionBatchSize"/>
/// rows when cursored. Row-to-row, so PredictionEngine works. It cannot be saved into an ML.NET model zip: use
/// <see cref="LoraPredictionTransformerBase{TModel}.SaveAdapter"/> and <see cref="Load"/>. Dispose it to free the model.
/// </summary>
public sealed class LoraTextClassificationPredictionTransformer : LoraPredictionTransformerBase<LoraTextClassificationTransformer>
{
    internal LoraTextClassificationPredictionTransformer(LoraTextClassificationTransformer model, DataViewSchema.Annotations? labelAnnotations)
        : base(model, new ClassificationScorer(model, labelAnnotations))
    {
    }

    /// <summary>Number of classes K (the label's key count).</summary>
    public int NumLabels => Model.NumLabels;

    /// <summary>
    /// Loads the base model of <paramref name="options"/> and the adapter saved by <see cref="LoraPredictionTransformerBase{TModel}.SaveAdapter"/>.
    /// PredictedLabel's KeyValues are the label names saved with the adapter (the label's text KeyValues at Fit).
    /// </summary>
    public static LoraTextClassificationPredictionTransformer Load(string adapterDirectory, LoraTextClassificationOptions options) =>
        new(LoraTextClassificationTransformer.Load(adapterDirectory, options), null);
}
