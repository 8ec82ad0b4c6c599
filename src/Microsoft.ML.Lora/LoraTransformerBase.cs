using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// What the transformers of the LoRA pipeline steps (<see cref="LoraCausalLmTransformer"/>,
/// <see cref="LoraTextClassificationTransformer"/>) share: the model with its trained adapter, saving the
/// adapter (PEFT layout), merging it into the base weights and exporting ONNX. Methods are serialized
/// (one at a time); dispose it to free the model.
/// </summary>
public abstract class LoraTransformerBase : IDisposable
{
    private readonly object gate = new();
    private readonly string baseModelPath;
    private bool disposed;

    private protected LoraTransformerBase(LlamaForCausalLM model, Tokenizer tokenizer, LoraFineTuningOptions options, TrainingResult? trainingResult)
    {
        Model = model;
        Tokenizer = tokenizer;
        baseModelPath = options.ModelPath;
        TrainingResult = trainingResult;
    }

    /// <summary>What training did (step losses, steps); null for a transformer loaded from a saved adapter.</summary>
    public TrainingResult? TrainingResult { get; }

    /// <summary>True once <see cref="Merge"/> has folded the adapter into the base weights.</summary>
    public bool IsMerged { get; private set; }

    /// <summary>The underlying model, for uses this class does not cover. Owned by the transformer.</summary>
    public LlamaForCausalLM Model { get; }

    /// <summary>The model folder's tokenizer.</summary>
    public Tokenizer Tokenizer { get; }

    /// <summary>
    /// Writes the adapter as a PEFT folder (<c>adapter_config.json</c>, <c>adapter_model.safetensors</c>, plus
    /// the step's own files: a classifier adds <c>labels.json</c> and saves its <c>score</c> head with the
    /// adapter) to <paramref name="directory"/>, which must be new or empty; the folder appears whole or not at all.
    /// </summary>
    /// <exception cref="InvalidOperationException">The adapter was merged.</exception>
    public void SaveAdapter(string directory) => Locked(model =>
    {
        if (IsMerged)
        {
            throw new InvalidOperationException($"{nameof(SaveAdapter)}: the adapter was merged into the base weights by Merge(); save the adapter before merging, or export the merged model with ExportOnnx");
        }

        AdapterFolder.Save(model, directory, baseModelPath, AdapterFiles());
    });

    /// <summary>
    /// Folds the adapter into the base weights (W ← W + s·B·A, checked finite) and removes it: prediction then
    /// costs no adapter work, and a classifier's trained head stays. NF4 or BF16 base weights become F32. The
    /// adapter can no longer be saved separately.
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
    /// <see cref="LlamaOnnxExporter.Export"/>. Inputs <c>input_ids</c> and <c>attention_mask</c> (right-padded);
    /// a causal LM outputs <c>logits</c> [B, T, V], a classifier <c>logits</c> [B, K] at each row's last real token.
    /// </summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null) => Locked(model => LlamaOnnxExporter.Export(model, path, options));

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
    }

    /// <summary>Files saved next to the PEFT files by <see cref="SaveAdapter"/> (name → UTF-8 text).</summary>
    private protected virtual IReadOnlyDictionary<string, string> AdapterFiles() => new Dictionary<string, string>();

    /// <summary>Runs <paramref name="action"/> on the model under the transformer's lock, after checking it is not disposed.</summary>
    private protected void Locked(Action<LlamaForCausalLM> action)
    {
        lock (gate)
        {
            ThrowIfDisposed();
            action(Model);
        }
    }

    /// <summary>Runs <paramref name="function"/> on the model under the transformer's lock, after checking it is not disposed.</summary>
    private protected T Locked<T>(Func<LlamaForCausalLM, T> function)
    {
        lock (gate)
        {
            ThrowIfDisposed();
            return function(Model);
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);
}
