using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>Loading the frozen base of a step, attaching or loading its adapter, and moving it to its device.</summary>
internal static class StepModel
{
    /// <summary>
    /// Loads the base model with <paramref name="load"/> (path, dtype) in <paramref name="dtype"/>, then quantizes
    /// it to NF4 when asked (QLoRA). The model stays on the host; move it once its adapter is attached.
    /// </summary>
    public static LlamaForCausalLM LoadBase(string modelPath, DType dtype, LoraQuantization quantization, Func<string, DType, LlamaForCausalLM> load)
    {
        var model = load(modelPath, dtype);
        return Build(model, m =>
        {
            if (quantization != LoraQuantization.None)
            {
                m.QuantizeNf4(doubleQuant: quantization == LoraQuantization.Nf4DoubleQuant);
            }

            return m;
        });
    }

    /// <summary>Runs <paramref name="build"/> on <paramref name="model"/>; disposes the model when it throws (cancellation included).</summary>
    public static T Build<T>(LlamaForCausalLM model, Func<LlamaForCausalLM, T> build)
    {
        try
        {
            return build(model);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The base model of <paramref name="settings"/> with the adapter saved in <paramref name="adapterDirectory"/>, on <paramref name="backend"/>.</summary>
    public static LlamaForCausalLM WithSavedAdapter(StepSettings settings, string adapterDirectory, Backend backend, Func<string, DType, LlamaForCausalLM> load) =>
        Build(LoadBase(settings.ModelPath, settings.DType, settings.Quantization, load), m =>
        {
            m.LoadAdapter(adapterDirectory);
            return m.To(backend);
        });

    /// <summary>The model folder of a saved adapter: the one given, else the settings', else PEFT's base_model_name_or_path.</summary>
    /// <exception cref="ArgumentException">None of them names a folder.</exception>
    public static string ModelPathOf(string adapterDirectory, string? modelPath, StepSettings? settings)
    {
        string? path = modelPath ?? settings?.ModelPath ?? PeftBaseModel(adapterDirectory);
        if (string.IsNullOrWhiteSpace(path))
        {
            throw new ArgumentException($"the adapter in '{adapterDirectory}' does not name its base model folder ({StepSettings.FileName} and adapter_config.json's base_model_name_or_path are missing); pass modelPath", nameof(modelPath));
        }

        return Path.GetFullPath(path);
    }

    private static string? PeftBaseModel(string adapterDirectory)
    {
        string config = Path.Combine(adapterDirectory, "adapter_config.json");
        if (!File.Exists(config))
        {
            throw new FileNotFoundException($"'{adapterDirectory}' is not an adapter folder: adapter_config.json not found", config);
        }

        using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(config));
        return doc.RootElement.TryGetProperty("base_model_name_or_path", out var value) && value.ValueKind == System.Text.Json.JsonValueKind.String ? value.GetString() : null;
    }
}
