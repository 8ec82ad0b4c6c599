using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>A prompt followed by a completion, labelled so that only the completion is scored (−100 on the prompt).</summary>
internal static class CompletionRow
{
    public static (int[] Ids, int[] Labels) Of(int[] prompt, int[] completion)
    {
        int[] ids = [.. prompt, .. completion];
        int[] labels = new int[ids.Length];
        Array.Fill(labels, CrossEntropy.IgnoreIndex, 0, prompt.Length);
        completion.CopyTo(labels, prompt.Length);
        return (ids, labels);
    }
}
