using Microsoft.ML.Data;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What the LoRA transformers share: <see cref="Transform"/> returns a lazy view that adds the step's
/// columns, computed from the text columns in batches only when a cursor reads them; it is row-to-row, so
/// <c>PredictionEngine</c> works. The model with its adapter is saved as an adapter folder
/// (<see cref="SaveAdapter"/>, loaded back by the derived type's <c>Load</c>), merged into the base
/// weights (<see cref="Merge"/>) or exported as ONNX (<see cref="ExportOnnx"/>). An ML.NET model zip cannot
/// hold it: <c>mlContext.Model.Save</c> throws <see cref="NotSupportedException"/> saying so. Calls on the
/// model are serialized (one at a time); dispose the transformer to free the model.
/// </summary>
public abstract class LoraTransformerBase : ITransformer, IDisposable
{
    private readonly object gate = new();
    private bool disposed;

    private protected LoraTransformerBase(LlamaForCausalLM model, Tokenizer tokenizer, StepSettings settings, LoraTrainingMetrics? trainingMetrics)
    {
        Model = model;
        Tokenizer = tokenizer;
        Settings = settings;
        TrainingMetrics = trainingMetrics;
    }

    /// <summary>What Fit did (step losses, validation losses); null for a transformer made by <c>Load</c>.</summary>
    public LoraTrainingMetrics? TrainingMetrics { get; }

    /// <summary>The base model folder the adapter sits on.</summary>
    public string ModelPath => Settings.ModelPath;

    /// <summary>True once <see cref="Merge"/> has folded the adapter into the base weights.</summary>
    public bool IsMerged { get; private set; }

    /// <summary>True: each row's outputs are computed from its own texts.</summary>
    public bool IsRowToRowMapper => true;

    /// <summary>The model with its adapter (owned by the transformer).</summary>
    internal LlamaForCausalLM Model { get; }

    /// <summary>The model folder's tokenizer.</summary>
    internal Tokenizer Tokenizer { get; }

    /// <summary>What <see cref="SaveAdapter"/> writes for Load.</summary>
    internal StepSettings Settings { get; }

    /// <summary>The columns this step adds, computed in batches.</summary>
    private protected abstract TextBatchScorer Scorer { get; }

    /// <inheritdoc/>
    /// <exception cref="ArgumentOutOfRangeException">An input text column is missing or not String; the message names it (ML.NET's wording).</exception>
    public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => Scorer.OutputSchema(inputSchema);

    /// <inheritdoc/>
    /// <remarks>A cursor that reads an added column throws <see cref="InvalidOperationException"/> naming the column and the input row when a row's text is empty.</remarks>
    /// <exception cref="ArgumentOutOfRangeException">An input text column is missing or not String; the message names it.</exception>
    public IDataView Transform(IDataView input) => new ScoredDataView(input, Scorer);

    /// <inheritdoc/>
    public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoredRowMapper(inputSchema, Scorer);

    /// <summary>
    /// Writes the adapter folder to <paramref name="directory"/> (new or empty): the PEFT files
    /// (<c>adapter_config.json</c>, <c>adapter_model.safetensors</c>; a classifier's or regressor's
    /// <c>score</c> head is saved with them as PEFT's modules_to_save), the class names (<c>labels.json</c>) of
    /// a classifier, and <c>lora_mlnet.json</c>: the base model path, columns and prediction settings that
    /// <c>Load</c> restores. The folder appears whole or not at all.
    /// </summary>
    /// <exception cref="InvalidOperationException">The adapter was merged.</exception>
    public void SaveAdapter(string directory) => Locked(model =>
    {
        if (IsMerged)
        {
            throw new InvalidOperationException($"{nameof(SaveAdapter)}: the adapter was merged into the base weights by Merge(); save the adapter before merging, or export the merged model with ExportOnnx");
        }

        var files = new Dictionary<string, string>(AdapterFiles()) { [StepSettings.FileName] = Settings.ToJson() };
        AdapterFolder.Save(model, directory, Settings.ModelPath, files);
    });

    /// <summary>
    /// Folds the adapter into the base weights (W ← W + s·B·A, checked finite) and removes it: prediction then
    /// costs no adapter work and gives the same results up to float rounding. NF4 or BF16 base weights become
    /// F32. The adapter can no longer be saved separately.
    /// </summary>
    public void Merge() => Locked(model =>
    {
        if (!IsMerged)
        {
            model.MergeAndUnload();
            IsMerged = true;
        }
    });

    /// <summary>
    /// Exports the model with its adapter merged (the transformer is not changed) as ONNX; see
    /// <see cref="LlamaOnnxExporter.Export"/>. Inputs <c>input_ids</c> and <c>attention_mask</c> (right-padded); a
    /// causal LM outputs <c>logits</c> [B, T, V], a classifier <c>logits</c> [B, K] and a regressor [B, 1] at each
    /// row's last real token.
    /// </summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Locked(model => LlamaOnnxExporter.Export(model, path, options));

    /// <summary>Always throws: an ML.NET model zip cannot hold this transformer.</summary>
    /// <exception cref="NotSupportedException">Always; the message says what to use instead.</exception>
    void ICanSaveModel.Save(ModelSaveContext ctx) => throw SaveNotSupported.For(GetType().Name);

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (gate)
        {
            if (!disposed)
            {
                disposed = true;
                Model.Dispose();
            }
        }

        GC.SuppressFinalize(this);
    }

    /// <summary>Files saved next to the PEFT files besides the settings (name → UTF-8 text).</summary>
    private protected virtual IReadOnlyDictionary<string, string> AdapterFiles() => new Dictionary<string, string>();

    /// <summary>Runs <paramref name="action"/> on the model under the transformer's lock, after checking it is not disposed.</summary>
    private protected void Locked(Action<LlamaForCausalLM> action)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            action(Model);
        }
    }

    /// <summary>Runs <paramref name="function"/> on the model under the transformer's lock, after checking it is not disposed.</summary>
    private protected T Locked<T>(Func<LlamaForCausalLM, T> function)
    {
        lock (gate)
        {
            ObjectDisposedException.ThrowIf(disposed, this);
            return function(Model);
        }
    }
}
