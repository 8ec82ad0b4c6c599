using Microsoft.ML.Data;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What the ML.NET transformers of the LoRA steps (<see cref="LoraCausalLmPredictionTransformer"/>,
/// <see cref="LoraTextClassificationPredictionTransformer"/>) share: <see cref="Transform"/> returns a lazy view
/// that adds the step's columns, computed from one text column in batches only when a cursor reads them;
/// it is row-to-row, so PredictionEngine works. It cannot be saved into an ML.NET model zip: use
/// <see cref="SaveAdapter"/> and the derived type's <c>Load</c>. Dispose it to free the model.
/// </summary>
/// <typeparam name="TModel">The plain transformer underneath.</typeparam>
public abstract class LoraPredictionTransformerBase<TModel> : ITransformer, IDisposable
    where TModel : LoraTransformerBase
{
    private readonly TextBatchScorer scorer;

    private protected LoraPredictionTransformerBase(TModel model, TextBatchScorer scorer)
    {
        Model = model;
        this.scorer = scorer;
    }

    /// <summary>The plain transformer underneath (prediction, adapter, merge, ONNX).</summary>
    public TModel Model { get; }

    /// <summary>True: each row's outputs are computed from its own text.</summary>
    public bool IsRowToRowMapper => true;

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">The input text column is missing or not String; the message names it.</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => scorer.OutputSchema(inputSchema);

    /// <inheritdoc/>
    /// <remarks>A cursor that reads an added column throws <see cref="InvalidOperationException"/> naming the column and the input row when a row's text is empty.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">The input text column is missing or not String; the message names it.</exception>
    public IDataView Transform(IDataView input) => new ScoredDataView(input, scorer);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoredRowMapper(inputSchema, scorer);

    /// <summary>Writes the adapter (PEFT layout, with a classifier's score head and label names); see <see cref="LoraTransformerBase.SaveAdapter"/>.</summary>
    public void SaveAdapter(string directory) => Model.SaveAdapter(directory);

    /// <summary>Folds the adapter into the base weights; predictions stay the same up to float rounding.</summary>
    public void Merge() => Model.Merge();

    /// <summary>Exports the model (adapter merged) as ONNX; see <see cref="LoraTransformerBase.ExportOnnx"/>.</summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Model.ExportOnnx(path, options);

    /// <summary>Always throws: an ML.NET model zip cannot hold this transformer.</summary>
    /// <exception cref="NotSupportedException">Always; the message says what to use instead.</exception>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw SaveNotSupported.For(GetType().Name);

    /// <inheritdoc/>
    public void Dispose() => Model.Dispose();
}
