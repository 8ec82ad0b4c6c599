namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// ML.NET transformer of a LoRA causal LM: <see cref="LoraPredictionTransformerBase{TModel}.Transform"/> returns
/// a lazy view that adds <see cref="LoraCausalLmOptions.OutputColumn"/> (String), generated after each row's
/// prompt only when a cursor reads that column. Needs only the prompt column. Row-to-row, so PredictionEngine
/// works. It cannot be saved into an ML.NET model zip: use <see cref="LoraPredictionTransformerBase{TModel}.SaveAdapter"/>
/// and <see cref="Load"/>. Dispose it to free the model.
/// </summary>
public sealed class LoraCausalLmPredictionTransformer : LoraPredictionTransformerBase<LoraCausalLmTransformer>
{
    internal LoraCausalLmPredictionTransformer(LoraCausalLmTransformer model)
        : base(model, new CausalLmScorer(model))
    {
    }

    /// <summary>Loads the base model of <paramref name="options"/> and the adapter saved by <see cref="LoraPredictionTransformerBase{TModel}.SaveAdapter"/>.</summary>
    public static LoraCausalLmPredictionTransformer Load(string adapterDirectory, LoraCausalLmOptions options) =>
        new(LoraCausalLmTransformer.Load(adapterDirectory, options));
}
