namespace Microsoft.ML.Lora.Models;

/// <summary>Picks the next token from a row of logits: greedy, or temperature / top-k / top-p sampling.</summary>
public sealed class Sampler(GenerationOptions options)
{
    private readonly Random random = new(options.Seed);

    /// <summary>The next token id for <paramref name="logits"/> (V).</summary>
    public int Next(ReadOnlySpan<float> logits)
    {
        if (options.Temperature == 0 || options.TopK == 1)
        {
            return ArgMax(logits);
        }

        // Candidates sorted by logit (ties by id, so the order is deterministic), cut by top-k.
        var order = new int[logits.Length];
        for (int i = 0; i < order.Length; i++)
        {
            order[i] = i;
        }

        var values = logits.ToArray();
        Array.Sort(order, (a, b) => values[a] != values[b] ? values[b].CompareTo(values[a]) : a.CompareTo(b));
        int count = options.TopK > 0 ? Math.Min(options.TopK, order.Length) : order.Length;

        // Softmax of logit/T over the candidates, max-subtracted, in double.
        var p = new double[count];
        double max = values[order[0]], sum = 0;
        for (int i = 0; i < count; i++)
        {
            p[i] = Math.Exp((values[order[i]] - max) / options.Temperature);
            sum += p[i];
        }

        // Top-p: keep the shortest prefix whose mass reaches p (at least one token).
        double mass = 0;
        int keep = count;
        for (int i = 0; i < count; i++)
        {
            mass += p[i] / sum;
            if (mass >= options.TopP)
            {
                keep = i + 1;
                break;
            }
        }

        double total = 0;
        for (int i = 0; i < keep; i++)
        {
            total += p[i];
        }

        double u = random.NextDouble() * total;
        for (int i = 0; i < keep; i++)
        {
            u -= p[i];
            if (u < 0)
            {
                return order[i];
            }
        }

        return order[keep - 1];
    }

    /// <summary>Index of the largest logit (the lowest index among equals).</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++)
        {
            if (logits[i] > logits[best])
            {
                best = i;
            }
        }

        return best;
    }
}
