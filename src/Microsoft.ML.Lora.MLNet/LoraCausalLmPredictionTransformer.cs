using Microsoft.ML.Data;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// ML.NET transformer of a LoRA causal LM: <see cref="Transform"/> returns a lazy view that adds
/// <see cref="LoraCausalLmOptions.OutputColumn"/> (String), generated after each row's prompt only when a
/// cursor reads that column. Needs only the prompt column. Row-to-row, so PredictionEngine works. It cannot
/// be saved into an ML.NET model zip: use <see cref="SaveAdapter"/> and <see cref="Load"/>.
/// Dispose it to free the model.
/// </summary>
public sealed class LoraCausalLmPredictionTransformer : ITransformer, IDisposable
{
    private readonly CausalLmScorer scorer;

    internal LoraCausalLmPredictionTransformer(LoraCausalLmTransformer model)
    {
        Model = model;
        scorer = new CausalLmScorer(model);
    }

    /// <summary>The plain transformer underneath (generation, adapter, merge, ONNX).</summary>
    public LoraCausalLmTransformer Model { get; }

    /// <summary>True: each row's text is generated from its own prompt.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>Loads the base model of <paramref name="options"/> and the adapter saved by <see cref="SaveAdapter"/>.</summary>
    public static LoraCausalLmPredictionTransformer Load(string adapterDirectory, LoraCausalLmOptions options) =>
        new(LoraCausalLmTransformer.Load(adapterDirectory, options));

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The prompt column is missing or not String; the message names it.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => scorer.OutputSchema(inputSchema);

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The prompt column is missing or not String; the message names it.</exception>
    public IDataView Transform(IDataView input) => new ScoredDataView(input, scorer);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoredRowMapper(inputSchema, scorer);

    /// <summary>Writes the adapter (PEFT layout); see <see cref="LoraCausalLmTransformer.SaveAdapter"/>.</summary>
    public void SaveAdapter(string directory) => Model.SaveAdapter(directory);

    /// <summary>Folds the adapter into the base weights.</summary>
    public void Merge() => Model.Merge();

    /// <summary>Exports the model (adapter merged) as ONNX; see <see cref="LoraCausalLmTransformer.ExportOnnx"/>.</summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Model.ExportOnnx(path, options);

    /// <summary>Always throws: an ML.NET model zip cannot hold this transformer.</summary>
    /// <exception cref="NotSupportedException">Always; the message says what to use instead.</exception>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw SaveNotSupported.For(nameof(LoraCausalLmPredictionTransformer));

    /// <inheritdoc/>
    public void Dispose() => Model.Dispose();
}
