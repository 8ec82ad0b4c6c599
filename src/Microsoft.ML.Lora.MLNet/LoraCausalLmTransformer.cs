using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// A causal LM with a LoRA adapter in an ML.NET pipeline: Transform returns a lazy view that adds the text
/// generated after each row's prompt (special tokens removed; generation stops at EOS), generated only when a
/// cursor reads that column; prompts of equal token length share a batch (GenerationBatchSize). Needs only the
/// prompt column. Row-to-row, so <c>PredictionEngine</c> works. Save with
/// <see cref="LoraTransformerBase.SaveAdapter"/> and reload with <see cref="Load"/>; an ML.NET model zip cannot
/// hold it. Dispose it to free the model.
/// </summary>
public sealed class LoraCausalLmTransformer : LoraTransformerBase
{
    private readonly PromptText text;

    internal LoraCausalLmTransformer(LlamaForCausalLM model, PromptText text, StepSettings settings, LoraTrainingMetrics? metrics)
        : base(model, text.Tokenizer, settings, metrics)
    {
        this.text = text;
        var g = settings.Generation ?? new GenerationSettings(128, 0, 0, 1, 0);
        Generation = new GenerationOptions
        {
            MaxNewTokens = g.MaxNewTokens,
            Temperature = g.Temperature,
            TopK = g.TopK,
            TopP = g.TopP,
            Seed = g.Seed,
            StopTokenIds = text.Tokenizer.EosTokenId is int eos ? [eos] : [],
        };
        Scorer = new CausalLmScorer(("prompt", settings.InputColumns[0]), settings.OutputColumn, settings.BatchSize, Generate);
    }

    /// <inheritdoc/>
    private protected override TextBatchScorer Scorer { get; }

    /// <summary>How Transform generates (from the options at Fit, or the saved settings); settable for benchmarks.</summary>
    internal GenerationOptions Generation { get; set; }

    /// <summary>
    /// Loads a causal LM saved by <see cref="LoraTransformerBase.SaveAdapter"/>: the base model (from the folder's
    /// settings, or <paramref name="modelPath"/>), the adapter, the columns and the generation settings. A PEFT
    /// CAUSAL_LM folder saved elsewhere loads too, with the default columns (Prompt → GeneratedText) and greedy
    /// generation of up to 128 tokens. The device is the MLContext's (<c>GpuDeviceId</c>, else the CPU).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder lacks the adapter files.</exception>
    /// <exception cref="InvalidDataException">The adapter does not fit the base model, or its files are malformed.</exception>
    public static LoraCausalLmTransformer Load(MLContext mlContext, string adapterDirectory, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterDirectory);
        var saved = StepSettings.Read(adapterDirectory, StepSettings.CausalLm);
        var settings = (saved ?? new StepSettings { Task = StepSettings.CausalLm, InputColumns = ["Prompt"], OutputColumn = "GeneratedText", BatchSize = 8 })
            with { ModelPath = StepModel.ModelPathOf(adapterDirectory, modelPath, saved) };
        using var host = new MLNetHost(MLNetHost.FromContext(mlContext), nameof(LoraCausalLmTransformer));
        var backend = DeviceChoice.Resolve(null, null, host, "MLContext.GpuDeviceId");
        var text = new PromptText(Tokenizer.Load(settings.ModelPath), trainOnPrompt: false);
        var model = StepModel.WithSavedAdapter(settings, adapterDirectory, backend, static (path, dtype) => LlamaForCausalLM.Load(path, dtype));
        return StepModel.Build(model, m => new LoraCausalLmTransformer(m, text, settings, null));
    }

    /// <summary>The continuation of each prompt, special tokens and the final EOS removed.</summary>
    internal IReadOnlyList<string> Generate(IReadOnlyList<string> prompts)
    {
        var ids = prompts.Select(text.PromptIds).ToList();
        return Locked(model =>
        {
            var generation = Generation;
            var generated = BatchedGeneration.Generate(model, ids, generation, Settings.BatchSize, CancellationToken.None);
            var results = new List<string>(generated.Length);
            foreach (var tokens in generated)
            {
                if (tokens.Count > 0 && generation.StopTokenIds.Contains(tokens[^1]))
                {
                    tokens.RemoveAt(tokens.Count - 1);
                }

                results.Add(Tokenizer.Decode(tokens.ToArray(), skipSpecialTokens: true));
            }

            return results;
        });
    }
}
