using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// Autoregressive generation for one sequence: yields each new token as soon as it is chosen
/// (streaming), with a KV cache (prefill the prompt once, then one token per step) or without one
/// (the whole sequence recomputed per token, the reference the cache must reproduce).
/// </summary>
public static class Generator
{
    /// <summary>Generates up to <see cref="GenerationOptions.MaxNewTokens"/> tokens after <paramref name="prompt"/>.</summary>
    public static IEnumerable<int> Generate(LlamaForCausalLM model, IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        if (prompt.Count == 0)
        {
            throw new ArgumentException("the prompt needs at least one token (e.g. BOS)", nameof(prompt));
        }

        if (model.Config.NumLabels is int labels)
        {
            throw new ArgumentException($"the model is a sequence classifier ({model.Config.Architecture}, {labels} labels): it scores texts (SequenceClassification.Logits) and cannot generate; load a causal LM", nameof(model));
        }

        // The KV cache holds prompt + new tokens: bounded by the positions the model was made for.
        long total = (long)prompt.Count + options.MaxNewTokens;
        if (total > model.Config.MaxPositionEmbeddings)
        {
            throw new ArgumentException($"the prompt's {prompt.Count} tokens and up to {options.MaxNewTokens} new ones make {total} positions, more than the model's max_position_embeddings {model.Config.MaxPositionEmbeddings}; ask for fewer new tokens", nameof(options));
        }

        return options.UseCache ? WithCache(model, prompt, options, cancellationToken) : WithoutCache(model, prompt, options, cancellationToken);
    }

    private static IEnumerable<int> WithCache(LlamaForCausalLM model, IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellationToken)
    {
        var sampler = new Sampler(options);
        using var cache = new KvCache(model.Config, 1, prompt.Count + options.MaxNewTokens, model.Backend);
        using var logits = Tensor.Empty(DType.F32, 1, model.Config.VocabSize);
        int[] input = [.. prompt];
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            model.ForwardCached(input, cache, logits);
            int next = sampler.Next(logits.AsF32());
            yield return next;
            if (options.StopTokenIds.Contains(next))
            {
                yield break;
            }

            input = [next];
        }
    }

    private static IEnumerable<int> WithoutCache(LlamaForCausalLM model, IReadOnlyList<int> prompt, GenerationOptions options, CancellationToken cancellationToken)
    {
        var sampler = new Sampler(options);
        var sequence = prompt.ToList();
        int v = model.Config.VocabSize;
        for (int produced = 0; produced < options.MaxNewTokens; produced++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var batch = CausalLmBatch.FromRows([sequence.ToArray()]);
            using var logits = Tensor.Empty(DType.F32, sequence.Count, v);
            model.Forward(batch, logits);
            int next = sampler.Next(logits.AsF32().Slice((sequence.Count - 1) * v, v));
            yield return next;
            if (options.StopTokenIds.Contains(next))
            {
                yield break;
            }

            sequence.Add(next);
        }
    }
}
