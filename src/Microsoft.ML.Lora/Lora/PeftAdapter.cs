using System.Runtime.CompilerServices;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// PEFT adapter folders (<c>adapter_config.json</c> + <c>adapter_model.safetensors</c>), so an adapter
/// trained here loads in PEFT and vLLM, and theirs load here (../shared/DESIGN.md §4). Key names and
/// shapes are PEFT's: <c>base_model.model.&lt;module&gt;.lora_A.weight</c> (r, in) and
/// <c>…lora_B.weight</c> (out, r), F32.
/// </summary>
public static class PeftAdapter
{
    /// <summary>The weights file PEFT writes (safe_serialization, its default since 0.6).</summary>
    public const string WeightsFileName = "adapter_model.safetensors";

    // Options an adapter was loaded with, so that saving it again writes the same config. Kept only
    // while the very same adapter objects are attached (an adapter re-created under the name is not described by them).
    private static readonly ConditionalWeakTable<LlamaForCausalLM, Dictionary<string, (LoraOptions Options, LoraAdapter[] Adapters)>> Loaded = new();

    /// <summary>
    /// Writes adapter <paramref name="adapterName"/> as a PEFT adapter folder at <paramref name="directory"/>
    /// (created if needed; other files in it are kept). Both files appear together: a new folder is filled
    /// beside the target and renamed into place; on failure no adapter file is left behind.
    /// </summary>
    /// <param name="model">The model holding the adapter.</param>
    /// <param name="directory">The adapter folder.</param>
    /// <param name="adapterName">Which attached adapter to save; its name is not part of the saved keys (PEFT's convention).</param>
    /// <param name="baseModelNameOrPath">Written as <c>base_model_name_or_path</c> (PEFT and vLLM use it to find the base model).</param>
    /// <param name="options">
    /// The options the adapter was created with (α, rsLoRA, dropout, bias, init, patterns, modules_to_save).
    /// When null: those it was created with by <see cref="LoraModelExtensions.AddAdapter"/> or loaded with by
    /// <see cref="LoadAdapter"/> (while those adapters are still attached), else a description from the adapters
    /// themselves (r and s per module as r, α = s·r and patterns; trainable biases and weights as bias and modules_to_save).
    /// </param>
    /// <exception cref="ArgumentException">No such adapter, or <paramref name="options"/> give another rank or scale than the adapters have.</exception>
    /// <exception cref="IOException">The folder cannot be written; the message names it.</exception>
    public static void SaveAdapter(this LlamaForCausalLM model, string directory, string adapterName = LoraModelExtensions.DefaultAdapterName, string? baseModelNameOrPath = null, LoraOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        lock (Loaded)
        {
            if (options is null && Loaded.TryGetValue(model, out var byName) && byName.TryGetValue(adapterName, out var loaded)
                && loaded.Adapters.ToHashSet().SetEquals(model.Adapters(adapterName)))
            {
                options = loaded.Options;
            }
        }

        PeftAdapterWriter.Save(model, directory, adapterName, baseModelNameOrPath, options);
    }

    /// <summary>
    /// The number of classes of a sequence-classification adapter folder (the rows of its saved
    /// <c>score</c> head), or null for a causal-LM adapter: what <see cref="LlamaForCausalLM.LoadForSequenceClassification"/>
    /// needs to build the base it loads into.
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder has no adapter weights file.</exception>
    public static int? NumLabels(string directory)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string path = Path.Combine(Path.GetFullPath(directory), WeightsFileName);
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{Path.GetFullPath(directory)}' is not a PEFT adapter folder: {WeightsFileName} not found", path);
        }

        using var file = Formats.SafeTensorsFile.Open(path);
        return file.Tensors.TryGetValue(PeftAdapterKeys.Whole(SequenceClassification.HeadWeightName), out var head) && head.Shape.Length == 2 ? head.Shape[0] : null;
    }

    /// <summary>Records the options adapter <paramref name="adapterName"/> was created with, for <see cref="SaveAdapter"/>.</summary>
    internal static void Remember(LlamaForCausalLM model, string adapterName, LoraOptions options, IEnumerable<LoraAdapter> adapters)
    {
        lock (Loaded)
        {
            Loaded.GetOrCreateValue(model)[adapterName] = (options, adapters.ToArray());
        }
    }

    /// <summary>
    /// Loads a PEFT LoRA adapter folder as adapter <paramref name="adapterName"/> and makes it active. Every
    /// tensor must map to a module of this model with the right shape and every adapted module needs both
    /// A and B; F16/BF16/F64 tensors become F32. Trained biases and modules_to_save weights replace the base
    /// model's (as PEFT applies them). On any error the model is left exactly as it was.
    /// </summary>
    /// <param name="model">The base model the adapter was trained on.</param>
    /// <param name="directory">Folder with <c>adapter_config.json</c> and <c>adapter_model.safetensors</c>.</param>
    /// <param name="adapterName">Name to attach it under (must be free).</param>
    /// <param name="isTrainable">PEFT's <c>is_trainable</c>: false (default) loads for inference, with no gradients allocated.</param>
    /// <returns>The adapters attached, one per adapted Linear.</returns>
    /// <exception cref="FileNotFoundException">A file of the folder is missing.</exception>
    /// <exception cref="InvalidDataException">A bad config field, or a tensor that does not fit this model; the message names file and key.</exception>
    /// <exception cref="NotSupportedException">A PEFT variant this library does not implement (other peft_type, DoRA, pickle weights, …).</exception>
    public static IReadOnlyList<LoraAdapter> LoadAdapter(this LlamaForCausalLM model, string directory, string adapterName = LoraModelExtensions.DefaultAdapterName, bool isTrainable = false)
    {
        var (adapters, options) = PeftAdapterLoader.Load(model, directory, adapterName, isTrainable);
        Remember(model, adapterName, options, adapters);

        return adapters;
    }
}
