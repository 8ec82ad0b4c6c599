using Microsoft.ML.Lora.MLNet;

namespace Microsoft.ML;

/// <summary>
/// Catalog extensions for LoRA/QLoRA fine-tuning in ML.NET pipelines, in the shape of ML.NET's TorchSharp
/// trainers: per task, one method with the column names and the common knobs, and one taking the task's
/// options. Text classification is a multiclass trainer, text regression a regression trainer; causal-LM
/// SFT maps a prompt column to a generated-text column, so it sits with the text transforms. The seed comes
/// from the MLContext (<c>new MLContext(seed: …)</c>) and progress goes to <c>MLContext.Log</c>.
/// </summary>
public static class LoraCatalog
{
    /// <summary>
    /// A LoRA text classifier of the model folder <paramref name="modelPath"/>: trains on String sentence
    /// column(s) and a key-typed label (put <c>Transforms.Conversion.MapValueToKey</c> before it) and adds
    /// PredictedLabel and Score. A second sentence column makes each row a sentence pair.
    /// </summary>
    /// <param name="catalog">The multiclass trainers catalog.</param>
    /// <param name="modelPath">Hugging Face model folder (config.json, safetensors, tokenizer.json).</param>
    /// <param name="labelColumnName">The key-typed label column.</param>
    /// <param name="sentence1ColumnName">The (first) String text column.</param>
    /// <param name="sentence2ColumnName">The second String text column of sentence pairs, or null.</param>
    /// <param name="scoreColumnName">The added column of class probabilities.</param>
    /// <param name="predictedLabelColumnName">The added column of the predicted class (a key).</param>
    /// <param name="batchSize">Rows per micro-batch.</param>
    /// <param name="maxEpochs">Passes over the training data.</param>
    /// <param name="validationSet">Rows whose loss is measured after every epoch (same columns), or null.</param>
    public static LoraTextClassificationTrainer LoraTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        string modelPath,
        string labelColumnName = "Label",
        string sentence1ColumnName = "Sentence1",
        string? sentence2ColumnName = null,
        string scoreColumnName = "Score",
        string predictedLabelColumnName = "PredictedLabel",
        int batchSize = 32,
        int maxEpochs = 10,
        IDataView? validationSet = null) =>
        LoraTextClassification(catalog, new LoraTextClassificationTrainer.Options
        {
            ModelPath = modelPath,
            LabelColumnName = labelColumnName,
            Sentence1ColumnName = sentence1ColumnName,
            Sentence2ColumnName = sentence2ColumnName,
            ScoreColumnName = scoreColumnName,
            PredictedLabelColumnName = predictedLabelColumnName,
            BatchSize = batchSize,
            MaxEpochs = maxEpochs,
            ValidationSet = validationSet,
        });

    /// <summary>A LoRA/QLoRA text classifier configured by <paramref name="options"/> (copied and validated here).</summary>
    /// <exception cref="ArgumentException">An invalid option; the message names it and its value.</exception>
    public static LoraTextClassificationTrainer LoraTextClassification(
        this MulticlassClassificationCatalog.MulticlassClassificationTrainers catalog,
        LoraTextClassificationTrainer.Options options) =>
        new(MLNetHost.FromCatalog(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>
    /// A LoRA text regressor of the model folder <paramref name="modelPath"/> (Hugging Face's num_labels = 1,
    /// problem_type "regression": one output, mean squared error): trains on String sentence column(s) and a
    /// Single label and adds Score. Two sentence columns give e.g. sentence-similarity scoring.
    /// </summary>
    /// <param name="catalog">The regression trainers catalog.</param>
    /// <param name="modelPath">Hugging Face model folder (config.json, safetensors, tokenizer.json).</param>
    /// <param name="labelColumnName">The Single label column.</param>
    /// <param name="sentence1ColumnName">The (first) String text column.</param>
    /// <param name="sentence2ColumnName">The second String text column of sentence pairs, or null.</param>
    /// <param name="scoreColumnName">The added column of predicted values.</param>
    /// <param name="batchSize">Rows per micro-batch.</param>
    /// <param name="maxEpochs">Passes over the training data.</param>
    /// <param name="validationSet">Rows whose mean squared error is measured after every epoch (same columns), or null.</param>
    public static LoraTextRegressionTrainer LoraTextRegression(
        this RegressionCatalog.RegressionTrainers catalog,
        string modelPath,
        string labelColumnName = "Label",
        string sentence1ColumnName = "Sentence1",
        string? sentence2ColumnName = null,
        string scoreColumnName = "Score",
        int batchSize = 32,
        int maxEpochs = 10,
        IDataView? validationSet = null) =>
        LoraTextRegression(catalog, new LoraTextRegressionTrainer.Options
        {
            ModelPath = modelPath,
            LabelColumnName = labelColumnName,
            Sentence1ColumnName = sentence1ColumnName,
            Sentence2ColumnName = sentence2ColumnName,
            ScoreColumnName = scoreColumnName,
            BatchSize = batchSize,
            MaxEpochs = maxEpochs,
            ValidationSet = validationSet,
        });

    /// <summary>A LoRA/QLoRA text regressor configured by <paramref name="options"/> (copied and validated here).</summary>
    /// <exception cref="ArgumentException">An invalid option; the message names it and its value.</exception>
    public static LoraTextRegressionTrainer LoraTextRegression(
        this RegressionCatalog.RegressionTrainers catalog,
        LoraTextRegressionTrainer.Options options) =>
        new(MLNetHost.FromCatalog(catalog), options ?? throw new ArgumentNullException(nameof(options)));

    /// <summary>
    /// Supervised fine-tuning of the causal LM in <paramref name="modelPath"/> with LoRA on String prompt and
    /// completion columns; the transformer adds a String column with the text generated after each prompt.
    /// </summary>
    /// <param name="catalog">The text transforms catalog.</param>
    /// <param name="modelPath">Hugging Face model folder (config.json, safetensors, tokenizer.json).</param>
    /// <param name="promptColumnName">The String prompt column.</param>
    /// <param name="completionColumnName">The String completion column (Fit only).</param>
    /// <param name="generatedTextColumnName">The added String column of generated text.</param>
    /// <param name="batchSize">Rows per micro-batch.</param>
    /// <param name="maxEpochs">Passes over the training data.</param>
    /// <param name="validationSet">Rows whose completion loss is measured after every epoch (same columns), or null.</param>
    public static LoraCausalLmTrainer LoraCausalLm(
        this TransformsCatalog.TextTransforms catalog,
        string modelPath,
        string promptColumnName = "Prompt",
        string completionColumnName = "Completion",
        string generatedTextColumnName = "GeneratedText",
        int batchSize = 32,
        int maxEpochs = 10,
        IDataView? validationSet = null) =>
        LoraCausalLm(catalog, new LoraCausalLmTrainer.Options
        {
            ModelPath = modelPath,
            PromptColumnName = promptColumnName,
            CompletionColumnName = completionColumnName,
            GeneratedTextColumnName = generatedTextColumnName,
            BatchSize = batchSize,
            MaxEpochs = maxEpochs,
            ValidationSet = validationSet,
        });

    /// <summary>Causal-LM SFT configured by <paramref name="options"/> (copied and validated here).</summary>
    /// <exception cref="ArgumentException">An invalid option; the message names it and its value.</exception>
    public static LoraCausalLmTrainer LoraCausalLm(
        this TransformsCatalog.TextTransforms catalog,
        LoraCausalLmTrainer.Options options) =>
        new(MLNetHost.FromCatalog(catalog), options ?? throw new ArgumentNullException(nameof(options)));
}
