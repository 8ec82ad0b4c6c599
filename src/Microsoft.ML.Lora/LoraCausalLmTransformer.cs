using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// A causal LM with a trained LoRA adapter, in ML.NET's transformer shape: <see cref="Transform"/> adds a
/// column of generated text for each row's prompt (or conversation), generating prompts of equal token
/// length together (<see cref="LoraCausalLmOptions.GenerationBatchSize"/>). It also saves the adapter (PEFT
/// layout), loads it back, merges it into the base weights and exports ONNX. Methods are serialized
/// (one at a time); dispose it to free the model.
/// </summary>
public sealed class LoraCausalLmTransformer : IDisposable
{
    private readonly object gate = new();
    private readonly LlamaForCausalLM model;
    private readonly CausalLmText text;
    private bool disposed;

    internal LoraCausalLmTransformer(LlamaForCausalLM model, CausalLmText text, LoraCausalLmOptions options, TrainingResult? trainingResult)
    {
        this.model = model;
        this.text = text;
        Options = options;
        TrainingResult = trainingResult;
    }

    /// <summary>The options the step was built with.</summary>
    public LoraCausalLmOptions Options { get; }

    /// <summary>What training did (step losses, steps); null for a transformer made by <see cref="Load"/>.</summary>
    public TrainingResult? TrainingResult { get; }

    /// <summary>True once <see cref="Merge"/> has folded the adapter into the base weights.</summary>
    public bool IsMerged { get; private set; }

    /// <summary>The underlying model, for uses this class does not cover. Owned by the transformer.</summary>
    public LlamaForCausalLM Model => model;

    /// <summary>The model folder's tokenizer.</summary>
    public Tokenizer Tokenizer => text.Tokenizer;

    /// <summary>
    /// Loads the base model of <paramref name="options"/> (ModelPath, DType, Quantize) and the adapter saved
    /// by <see cref="SaveAdapter"/> in <paramref name="adapterDirectory"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The adapter does not fit the base model; the message names file and key.</exception>
    public static LoraCausalLmTransformer Load(string adapterDirectory, LoraCausalLmOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterDirectory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var text = new CausalLmText(Tokenizer.Load(options.ModelPath), options);
        var model = PipelineModel.LoadBase(options.ModelPath, options.DType, options.Quantize);
        return PipelineModel.Build(model, m =>
        {
            m.LoadAdapter(adapterDirectory);
            return new LoraCausalLmTransformer(m, text, options, null);
        });
    }

    /// <summary>
    /// A new table: <paramref name="data"/> plus <see cref="LoraCausalLmOptions.OutputColumn"/> (string), the
    /// text generated after each row's PromptColumn (or MessagesColumn) value, special tokens removed.
    /// </summary>
    /// <exception cref="ArgumentException">The input column is missing, of the wrong type, or has an empty value; the message names it.</exception>
    public TextTable Transform(TextTable data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        IReadOnlyList<string> generated;
        if (Options.MessagesColumn is string messages)
        {
            generated = GenerateChat(PipelineColumns.Conversations(data, messages, "LoraCausalLmOptions.MessagesColumn"), cancellationToken);
        }
        else
        {
            generated = Generate(PipelineColumns.Texts(data, Options.PromptColumn, "LoraCausalLmOptions.PromptColumn"), cancellationToken);
        }

        return data.WithColumn(Options.OutputColumn, generated);
    }

    /// <summary>The continuation of each prompt (special tokens removed), with <see cref="LoraCausalLmOptions.Generation"/>.</summary>
    public IReadOnlyList<string> Generate(IReadOnlyList<string> prompts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        return Run(prompts.Select((p, i) => (Func<int[]>)(() => text.PromptIds(p ?? throw new ArgumentException($"prompt {i} is null", nameof(prompts))))).ToList(), cancellationToken);
    }

    /// <summary>The next assistant reply of each conversation (a conversation ending with an assistant turn is answered without it).</summary>
    public IReadOnlyList<string> GenerateChat(IReadOnlyList<IReadOnlyList<ChatMessage>> conversations, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(conversations);
        return Run(conversations.Select(c => (Func<int[]>)(() => text.ConversationIds(c))).ToList(), cancellationToken);
    }

    /// <summary>
    /// Writes the adapter as a PEFT folder (<c>adapter_config.json</c>, <c>adapter_model.safetensors</c>) to
    /// <paramref name="directory"/>, which must be new or empty; the folder appears whole or not at all.
    /// </summary>
    /// <exception cref="InvalidOperationException">The adapter was merged.</exception>
    public void SaveAdapter(string directory)
    {
        lock (gate)
        {
            ThrowIfDisposed();
            PipelineModel.RequireAdapter(IsMerged, nameof(SaveAdapter));
            AdapterFolder.Save(model, directory, Options.ModelPath, new Dictionary<string, string>());
        }
    }

    /// <summary>
    /// Folds the adapter into the base weights (W ← W + s·B·A, checked finite) and removes it: generation then
    /// costs no adapter work. NF4 or BF16 base weights become F32. The adapter can no longer be saved separately.
    /// </summary>
    public void Merge()
    {
        lock (gate)
        {
            ThrowIfDisposed();
            if (!IsMerged)
            {
                model.MergeAndUnload();
                IsMerged = true;
            }
        }
    }

    /// <summary>Exports the model with its adapter merged (the transformer is not changed) as ONNX; see <see cref="LlamaOnnxExporter.Export"/>.</summary>
    public void ExportOnnx(string path, OnnxExportOptions? options = null)
    {
        lock (gate)
        {
            ThrowIfDisposed();
            LlamaOnnxExporter.Export(model, path, options);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        lock (gate)
        {
            if (!disposed)
            {
                disposed = true;
                model.Dispose();
            }
        }
    }

    private List<string> Run(IReadOnlyList<Func<int[]>> inputs, CancellationToken cancellationToken)
    {
        var generation = Options.Generation;
        if (generation.StopTokenIds.Count == 0 && Tokenizer.EosTokenId is int eos)
        {
            generation = generation with { StopTokenIds = [eos] };
        }

        var prompts = inputs.Select(static input => input()).ToList();
        lock (gate)
        {
            ThrowIfDisposed();
            var generated = BatchedGeneration.Generate(model, prompts, generation, Options.GenerationBatchSize, cancellationToken);
            var results = new List<string>(generated.Length);
            foreach (var ids in generated)
            {
                if (ids.Count > 0 && generation.StopTokenIds.Contains(ids[^1]))
                {
                    ids.RemoveAt(ids.Count - 1);
                }

                results.Add(Tokenizer.Decode(ids.ToArray(), skipSpecialTokens: true));
            }

            return results;
        }
    }

    private void ThrowIfDisposed() => ObjectDisposedException.ThrowIf(disposed, this);
}
