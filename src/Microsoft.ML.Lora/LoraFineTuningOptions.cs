using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// What every LoRA pipeline step is configured with: the base model folder and how its frozen weights are
/// stored, the adapter, and the training run. <see cref="LoraCausalLmOptions"/> and
/// <see cref="LoraTextClassificationOptions"/> add their task's columns. Immutable; <see cref="Validate"/>
/// throws <see cref="ArgumentException"/> naming the option and the value.
/// </summary>
public abstract record LoraFineTuningOptions
{
    /// <summary>
    /// Hugging Face model folder (config.json, safetensors, tokenizer.json). Required. For text classification
    /// it may be a causal LM (a new <c>score</c> head is added) or a sequence classifier.
    /// </summary>
    public string ModelPath { get; init; } = "";

    /// <summary>Storage of the frozen base weights when <see cref="Quantize"/> is None: F32 (default) or BF16 (half the memory).</summary>
    public DType DType { get; init; } = DType.F32;

    /// <summary>None (default) = LoRA; Nf4 or Nf4DoubleQuant = QLoRA.</summary>
    public LoraQuantization Quantize { get; init; } = LoraQuantization.None;

    /// <summary>
    /// The adapter: rank, α, targets (default all linear layers, r = 8, α = 32). A classifier's <c>score</c>
    /// head is never adapted: it always trains fully.
    /// </summary>
    public LoraOptions Lora { get; init; } = new();

    /// <summary>The training run: learning rate, epochs or steps, batch size, seed.</summary>
    public TrainingOptions Training { get; init; } = new();

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option and its value.</summary>
    public virtual void Validate()
    {
        string owner = GetType().Name;
        if (string.IsNullOrWhiteSpace(ModelPath))
        {
            throw new ArgumentException($"{owner}.ModelPath is empty; expected a Hugging Face model folder (config.json, safetensors, tokenizer.json)", nameof(ModelPath));
        }

        if (DType is not (DType.F32 or DType.BF16))
        {
            throw new ArgumentException($"{owner}.DType = {DType} is invalid: expected F32 or BF16 (NF4 is chosen with Quantize)", nameof(DType));
        }

        if (!Enum.IsDefined(Quantize))
        {
            throw new ArgumentException($"{owner}.Quantize = {Quantize} is invalid: expected None, Nf4 or Nf4DoubleQuant", nameof(Quantize));
        }

        ArgumentNullException.ThrowIfNull(Lora, nameof(Lora));
        ArgumentNullException.ThrowIfNull(Training, nameof(Training));
        Training.Validate();
    }

    /// <summary>Throws when the column-name option <paramref name="option"/> is empty.</summary>
    private protected void RequireColumnName(string option, string? value)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new ArgumentException($"{GetType().Name}.{option} is empty; expected a column name", option);
        }
    }
}
