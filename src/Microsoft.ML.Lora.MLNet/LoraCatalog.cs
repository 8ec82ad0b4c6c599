using Microsoft.ML.Lora;
using Microsoft.ML.Lora.MLNet;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML;

/// <summary>
/// Catalog extensions for LoRA/QLoRA fine-tuning in an ML.NET pipeline. Text classification is a multiclass
/// trainer (<c>mlContext.MulticlassClassification.Trainers</c>); causal-LM SFT maps a text column to a text
/// column, so it sits with the text transforms (<c>mlContext.Transforms.Text</c>).
/// </summary>
public static class LoraCatalog
{
    /// <summary>
    /// A LoRA/QLoRA text classifier: trains on a String text column and a key-typed label column (put
    /// <c>Transforms.Conversion.MapValueToKey</c> before it) and adds PredictedLabel and Score.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="options">Model folder, adapter, training and column options.</param>
    /// <param name="progress">Receives one report per optimizer step during Fit.</param>
    /// <param name="cancellationToken">Cancels Fit.</param>
    public static LoraTextClassificationTrainer LoraTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        LoraTextClassificationOptions options,
        IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LoraTextClassificationTrainer(options, progress, cancellationToken);
    }

    /// <summary>A LoRA text classifier of the model folder <paramref name="modelPath"/> with default adapter and training options.</summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="modelPath">Hugging Face model folder (config.json, safetensors, tokenizer.json).</param>
    /// <param name="labelColumnName">Key-typed label column.</param>
    /// <param name="textColumnName">String text column.</param>
    public static LoraTextClassificationTrainer LoraTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string modelPath,
        string labelColumnName = "Label",
        string textColumnName = "Text") =>
        LoraTextClassification(catalog, new LoraTextClassificationOptions { ModelPath = modelPath, LabelColumn = labelColumnName, TextColumn = textColumnName });

    /// <summary>
    /// Supervised fine-tuning of a causal LM with LoRA/QLoRA on String prompt and completion columns; the
    /// transformer adds a String column with the text generated after each prompt.
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="options">Model folder, adapter, training, generation and column options (MessagesColumn must be null).</param>
    /// <param name="progress">Receives one report per optimizer step during Fit.</param>
    /// <param name="cancellationToken">Cancels Fit.</param>
    public static LoraCausalLmTrainer LoraCausalLm(
        this TransformsCatalog.TextTransforms catalog,
        LoraCausalLmOptions options,
        IProgress<TrainingProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(catalog);
        return new LoraCausalLmTrainer(options, progress, cancellationToken);
    }
}
