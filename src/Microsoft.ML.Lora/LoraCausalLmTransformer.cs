using Microsoft.ML.Lora.Models;
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
public sealed class LoraCausalLmTransformer : LoraTransformerBase
{
    private readonly CausalLmText text;

    internal LoraCausalLmTransformer(LlamaForCausalLM model, CausalLmText text, LoraCausalLmOptions options, TrainingResult? trainingResult)
        : base(model, text.Tokenizer, options, trainingResult)
    {
        this.text = text;
        Options = options;
    }

    /// <summary>The options the step was built with.</summary>
    public LoraCausalLmOptions Options { get; }

    /// <summary>
    /// Loads the base model of <paramref name="options"/> (ModelPath, DType, Quantize) and the adapter saved
    /// by <see cref="LoraTransformerBase.SaveAdapter"/> in <paramref name="adapterDirectory"/>.
    /// </summary>
    /// <exception cref="InvalidDataException">The adapter does not fit the base model; the message names file and key.</exception>
    public static LoraCausalLmTransformer Load(string adapterDirectory, LoraCausalLmOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterDirectory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var text = new CausalLmText(Tokenizer.Load(options.ModelPath), options);
        return PipelineModel.WithSavedAdapter(PipelineModel.LoadBase(options), adapterDirectory, model => new LoraCausalLmTransformer(model, text, options, null));
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

    private List<string> Run(IReadOnlyList<Func<int[]>> inputs, CancellationToken cancellationToken)
    {
        var generation = Options.Generation;
        if (generation.StopTokenIds.Count == 0 && Tokenizer.EosTokenId is int eos)
        {
            generation = generation with { StopTokenIds = [eos] };
        }

        var prompts = inputs.Select(static input => input()).ToList();
        return Locked(model =>
        {
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
        });
    }
}
