using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Generation for many prompts at once: prompts of equal token length share one KV cache and one forward
/// pass per step (B rows instead of B passes of one row), each row with its own sampler seeded as
/// <see cref="Generator"/> seeds it. A row that has stopped keeps being fed its stop token, whose outputs are
/// ignored; under causal attention the rows never see each other.
/// </summary>
internal static class BatchedGeneration
{
    /// <summary>The tokens generated after each prompt (the stop token included when one was produced), in prompt order.</summary>
    public static List<int>[] Generate(LlamaForCausalLM model, IReadOnlyList<int[]> prompts, GenerationOptions options, int batchSize, CancellationToken cancellationToken)
    {
        var results = new List<int>[prompts.Count];
        if (batchSize == 1 || !options.UseCache)
        {
            for (int i = 0; i < prompts.Count; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                results[i] = Generator.Generate(model, prompts[i], options, cancellationToken).ToList();
            }

            return results;
        }

        foreach (var group in Enumerable.Range(0, prompts.Count).GroupBy(i => prompts[i].Length))
        {
            foreach (int[] chunk in group.Chunk(batchSize))
            {
                var generated = Run(model, [.. chunk.Select(i => prompts[i])], options, cancellationToken);
                for (int r = 0; r < chunk.Length; r++)
                {
                    results[chunk[r]] = generated[r];
                }
            }
        }

        return results;
    }

    // prompts: B rows of T tokens each → up to MaxNewTokens tokens per row.
    private static List<int>[] Run(LlamaForCausalLM model, int[][] prompts, GenerationOptions options, CancellationToken cancellationToken)
    {
        int b = prompts.Length, v = model.Config.VocabSize;
        var samplers = prompts.Select(_ => new Sampler(options)).ToArray();
        var outputs = prompts.Select(_ => new List<int>()).ToArray();
        var done = new bool[b];
        using var cache = new KvCache(model.Config, b, prompts[0].Length + options.MaxNewTokens, model.Backend);
        using var logits = Tensor.Empty(DType.F32, b, v);
        int[] input = [.. prompts.SelectMany(static p => p)];
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            model.ForwardCached(input, cache, logits);
            var next = new int[b];
            for (int r = 0; r < b; r++)
            {
                if (done[r])
                {
                    next[r] = outputs[r][^1];
                    continue;
                }

                int id = samplers[r].Next(logits.AsF32().Slice(r * v, v));
                outputs[r].Add(id);
                done[r] = options.StopTokenIds.Contains(id);
                next[r] = id;
            }

            if (done.All(static d => d))
            {
                break;
            }

            input = next;
        }

        return outputs;
    }
}
