using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>The sequence-classification model calls a text-classification step makes.</summary>
internal static class ClassificationEngine
{
    public static LlamaForCausalLM Load(string modelPath, DType dtype, int numLabels, IReadOnlyList<string>? labelNames, int seed) =>
        throw new NotSupportedException($"sequence classification is not available in this build (model '{modelPath}', {numLabels} labels, {dtype}, {labelNames?.Count}, {seed})");

    public static TokenRow TrainingRow(int[] inputIds, int label, int line) =>
        throw new NotSupportedException($"sequence classification is not available in this build ({inputIds.Length}, {label}, {line})");

    public static float[][] Logits(LlamaForCausalLM model, IReadOnlyList<int[]> rows, int batchSize, CancellationToken cancellationToken) =>
        throw new NotSupportedException($"sequence classification is not available in this build ({model.Config.NumHiddenLayers}, {rows.Count}, {batchSize}, {cancellationToken.IsCancellationRequested})");
}
