using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora;

/// <summary>Loading the frozen base of a pipeline step and attaching its adapter.</summary>
internal static class PipelineModel
{
    /// <summary>Loads <paramref name="modelPath"/> in <paramref name="dtype"/>, then quantizes it to NF4 when asked (QLoRA).</summary>
    public static LlamaForCausalLM LoadBase(string modelPath, DType dtype, LoraQuantization quantize, Func<string, DType, LlamaForCausalLM>? load = null)
    {
        var model = (load ?? ((path, d) => LlamaForCausalLM.Load(path, d)))(modelPath, dtype);
        try
        {
            if (quantize != LoraQuantization.None)
            {
                model.QuantizeNf4(doubleQuant: quantize == LoraQuantization.Nf4DoubleQuant);
            }

            return model;
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>Runs <paramref name="build"/> on a new base model; disposes the model when it throws (cancellation included).</summary>
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

    /// <summary>Throws when the adapter was merged away, so it can no longer be saved separately.</summary>
    public static void RequireAdapter(bool merged, string operation)
    {
        if (merged)
        {
            throw new InvalidOperationException($"{operation}: the adapter was merged into the base weights by Merge(); save the adapter before merging, or export the merged model with ExportOnnx");
        }
    }
}
