using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora;

/// <summary>Loading the frozen base of a pipeline step and attaching its adapter.</summary>
internal static class PipelineModel
{
    /// <summary>Loads the options' ModelPath in their DType, then quantizes it to NF4 when asked (QLoRA).</summary>
    public static LlamaForCausalLM LoadBase(LoraFineTuningOptions options, Func<string, DType, LlamaForCausalLM>? load = null)
    {
        var model = (load ?? ((path, d) => LlamaForCausalLM.Load(path, d)))(options.ModelPath, options.DType);
        try
        {
            if (options.Quantize != LoraQuantization.None)
            {
                model.QuantizeNf4(doubleQuant: options.Quantize == LoraQuantization.Nf4DoubleQuant);
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

    /// <summary>
    /// Attaches the adapter saved in <paramref name="adapterDirectory"/> to a new base model and runs
    /// <paramref name="build"/>; disposes the model when either throws.
    /// </summary>
    public static T WithSavedAdapter<T>(LlamaForCausalLM model, string adapterDirectory, Func<LlamaForCausalLM, T> build) =>
        Build(model, m =>
        {
            m.LoadAdapter(adapterDirectory);
            return build(m);
        });
}
