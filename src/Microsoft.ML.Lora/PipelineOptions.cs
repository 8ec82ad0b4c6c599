using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>Checks shared by the pipeline option records.</summary>
internal static class PipelineOptions
{
    public static void RequireModel(string owner, string modelPath, DType dtype, LoraQuantization quantize, LoraOptions lora, TrainingOptions training)
    {
        if (string.IsNullOrWhiteSpace(modelPath))
        {
            throw new ArgumentException($"{owner}.ModelPath is empty; expected a Hugging Face model folder (config.json, safetensors, tokenizer.json)", "ModelPath");
        }

        if (dtype is not (DType.F32 or DType.BF16))
        {
            throw new ArgumentException($"{owner}.DType = {dtype} is invalid: expected F32 or BF16 (NF4 is chosen with Quantize)", "DType");
        }

        if (!Enum.IsDefined(quantize))
        {
            throw new ArgumentException($"{owner}.Quantize = {quantize} is invalid: expected None, Nf4 or Nf4DoubleQuant", "Quantize");
        }

        ArgumentNullException.ThrowIfNull(lora, "Lora");
        ArgumentNullException.ThrowIfNull(training, "Training");
        training.Validate();
    }

    public static void RequireName(string owner, string option, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new ArgumentException($"{owner}.{option} is empty; expected a column name", option);
        }
    }
}
