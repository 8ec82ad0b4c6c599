using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>The sequence-classification model calls a text-classification step makes.</summary>
internal static class ClassificationEngine
{
    /// <summary>The folder as a classifier with <paramref name="numLabels"/> classes (a new score head for a causal-LM folder, seeded).</summary>
    public static LlamaForCausalLM Load(string modelPath, DType dtype, int numLabels, IReadOnlyList<string>? labelNames, int seed) =>
        LlamaForCausalLM.LoadForSequenceClassification(modelPath, numLabels, dtype, labelNames, seed);

    /// <summary>A row the trainer learns <paramref name="label"/> from, at the row's last token.</summary>
    public static TokenRow TrainingRow(int[] inputIds, int label, int line) => SequenceClassification.TrainingRow(inputIds, label, line);

    /// <summary>Pooled class logits [rows][K].</summary>
    public static float[][] Logits(LlamaForCausalLM model, IReadOnlyList<int[]> rows, int batchSize, CancellationToken cancellationToken) =>
        SequenceClassification.Logits(model, rows, batchSize, cancellationToken);
}
