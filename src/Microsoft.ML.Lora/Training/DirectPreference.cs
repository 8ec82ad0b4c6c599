using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>The loss of <see cref="DirectPreference"/>.</summary>
public enum PreferenceLossType
{
    /// <summary>DPO (Rafailov et al. 2023): −ln σ(β·h), with optional label smoothing ε (cDPO): −(1−ε)·ln σ(β·h) − ε·ln σ(−β·h).</summary>
    Sigmoid,

    /// <summary>IPO (Azar et al. 2023): (h − 1/(2β))², on log-probabilities averaged over each completion's tokens (as TRL computes it).</summary>
    Ipo,
}

/// <summary>Options of <see cref="DirectPreference"/>: β (default 0.1, TRL's), the loss and cDPO's label smoothing.</summary>
public sealed record PreferenceOptions
{
    /// <summary>β: how far the policy may move from the reference (smaller is further). Default 0.1.</summary>
    public double Beta { get; init; } = 0.1;

    /// <summary>The loss; default <see cref="PreferenceLossType.Sigmoid"/> (DPO).</summary>
    public PreferenceLossType Loss { get; init; } = PreferenceLossType.Sigmoid;

    /// <summary>cDPO's ε in [0, 0.5): the probability that a pair's preference label is flipped. Sigmoid loss only.</summary>
    public double LabelSmoothing { get; init; }

    /// <summary>
    /// RPO's α (Pang et al. 2024; TRL's <c>rpo_alpha</c>): adds α × the chosen completion's mean token NLL to each
    /// pair's loss, so the preferred text also gains likelihood instead of only the rejected one losing it. 0 (default) is
    /// plain DPO / IPO.
    /// </summary>
    public double RpoAlpha { get; init; }

    /// <summary>Checks the options; the message names the option.</summary>
    public void Validate()
    {
        if (!(Beta > 0) || !double.IsFinite(Beta))
        {
            throw new ArgumentOutOfRangeException(nameof(Beta), Beta, "Beta must be a positive finite number (DPO's β; TRL's default is 0.1)");
        }

        if (!(LabelSmoothing >= 0 && LabelSmoothing < 0.5))
        {
            throw new ArgumentOutOfRangeException(nameof(LabelSmoothing), LabelSmoothing, "LabelSmoothing must be in [0, 0.5)");
        }

        if (!(RpoAlpha >= 0) || !double.IsFinite(RpoAlpha))
        {
            throw new ArgumentOutOfRangeException(nameof(RpoAlpha), RpoAlpha, "RpoAlpha must be a finite number ≥ 0 (0 = no NLL term; RPO uses 1)");
        }

        if (LabelSmoothing > 0 && Loss != PreferenceLossType.Sigmoid)
        {
            throw new ArgumentException($"LabelSmoothing applies to the sigmoid (DPO) loss only; the loss is {Loss}", nameof(LabelSmoothing));
        }
    }
}

/// <summary>One preference pair as token ids: a prompt and two completions, the chosen one preferred.</summary>
/// <param name="Prompt">Prompt ids (at least one, e.g. BOS); never scored.</param>
/// <param name="Chosen">The preferred completion's ids (at least one).</param>
/// <param name="Rejected">The other completion's ids (at least one).</param>
public sealed record PreferencePair(int[] Prompt, int[] Chosen, int[] Rejected);

/// <summary>What one batch of pairs gave: sums over its pairs (divide by <see cref="Pairs"/> for means).</summary>
/// <param name="Pairs">Pairs in the batch.</param>
/// <param name="LossSum">Σ loss.</param>
/// <param name="MarginSum">Σ (chosen reward − rejected reward), rewards β·(ln π − ln π_ref).</param>
/// <param name="Correct">Pairs whose chosen reward is above the rejected one.</param>
/// <param name="ChosenLogProbSum">Σ ln π(chosen | prompt) under the policy.</param>
/// <param name="RejectedLogProbSum">Σ ln π(rejected | prompt) under the policy.</param>
/// <param name="ChosenRewardSum">Σ chosen rewards.</param>
/// <param name="RejectedRewardSum">Σ rejected rewards.</param>
public readonly record struct PreferenceResult(int Pairs, double LossSum, double MarginSum, int Correct, double ChosenLogProbSum, double RejectedLogProbSum, double ChosenRewardSum, double RejectedRewardSum)
{
    /// <summary>Mean loss.</summary>
    public double Loss => LossSum / Pairs;

    /// <summary>Mean reward margin.</summary>
    public double Margin => MarginSum / Pairs;

    /// <summary>Fraction of pairs ranked right.</summary>
    public double Accuracy => (double)Correct / Pairs;

    /// <summary>Adds two results.</summary>
    public static PreferenceResult operator +(PreferenceResult a, PreferenceResult b) => new(
        a.Pairs + b.Pairs, a.LossSum + b.LossSum, a.MarginSum + b.MarginSum, a.Correct + b.Correct,
        a.ChosenLogProbSum + b.ChosenLogProbSum, a.RejectedLogProbSum + b.RejectedLogProbSum, a.ChosenRewardSum + b.ChosenRewardSum, a.RejectedRewardSum + b.RejectedRewardSum);
}

/// <summary>
/// Direct preference optimization with LoRA: the reference policy is the same model with its adapters disabled, so no
/// second copy of the weights exists. A batch of P pairs runs as one causal-LM batch of 2P rows (P chosen, then P
/// rejected), labels only on completion tokens. The reference log-probabilities come from one forward without adapters
/// and without gradients; the policy's from a forward/backward whose token weights are d loss / d ln π of each row.
/// </summary>
public static class DirectPreference
{
    /// <summary>
    /// A training row for <see cref="TrainingOptions.Preference"/> runs: the prompt and chosen completion as the row (labels
    /// on the completion only), the prompt and rejected completion in <see cref="TokenRow.Rejected"/>.
    /// </summary>
    public static TokenRow TrainingRow(int[] prompt, int[] chosen, int[] rejected, int line = 0)
    {
        ArgumentNullException.ThrowIfNull(prompt);
        ArgumentNullException.ThrowIfNull(chosen);
        ArgumentNullException.ThrowIfNull(rejected);
        if (prompt.Length == 0 || chosen.Length == 0 || rejected.Length == 0)
        {
            throw new ArgumentException($"row {line}: the prompt and both completions need at least one token (prompt {prompt.Length}, chosen {chosen.Length}, rejected {rejected.Length})");
        }

        var (ids, labels) = CompletionRow.Of(prompt, chosen);
        return new TokenRow(ids, labels, line, Rejected: [.. prompt, .. rejected]);
    }

    /// <summary>The pair a <see cref="TrainingRow"/> holds.</summary>
    public static PreferencePair PairOf(TokenRow row)
    {
        ArgumentNullException.ThrowIfNull(row);
        if (row.Rejected is not { } rejected || row.Labels is not { } labels)
        {
            throw new ArgumentException($"row {row.Line} is not a preference pair (DirectPreference.TrainingRow)", nameof(row));
        }

        int prompt = Array.FindIndex(labels, static l => l != CrossEntropy.IgnoreIndex);
        if (prompt <= 0 || prompt >= rejected.Length || !row.InputIds.AsSpan(0, prompt).SequenceEqual(rejected.AsSpan(0, prompt)))
        {
            throw new ArgumentException($"row {row.Line}: the chosen and rejected rows do not start with the same prompt followed by a completion", nameof(row));
        }

        return new PreferencePair(row.InputIds[..prompt], row.InputIds[prompt..], rejected[prompt..]);
    }

    /// <summary>The 2P rows (prompt + chosen, then prompt + rejected) with labels only on completions.</summary>
    public static CausalLmBatch Batch(IReadOnlyList<PreferencePair> pairs, int padId = 0)
    {
        ArgumentNullException.ThrowIfNull(pairs);
        if (pairs.Count == 0)
        {
            throw new ArgumentException("a preference batch needs at least one pair", nameof(pairs));
        }

        var rows = new List<int[]>(2 * pairs.Count);
        var labels = new List<int[]?>(2 * pairs.Count);
        foreach (bool chosen in new[] { true, false })
        {
            for (int i = 0; i < pairs.Count; i++)
            {
                var pair = pairs[i];
                int[] completion = chosen ? pair.Chosen : pair.Rejected;
                if (pair.Prompt.Length == 0 || completion.Length == 0)
                {
                    throw new ArgumentException($"pair {i}: the prompt and both completions need at least one token (prompt {pair.Prompt.Length}, {(chosen ? "chosen" : "rejected")} {completion.Length})", nameof(pairs));
                }

                var (row, label) = CompletionRow.Of(pair.Prompt, completion);
                rows.Add(row);
                labels.Add(label);
            }
        }

        return CausalLmBatch.FromRows(rows, labels, padId);
    }

    /// <summary>
    /// Loss, metrics and d loss / d(row log-probability) of P pairs from the policy's and the reference's summed
    /// completion log-probabilities (chosen rows first) and completion lengths.
    /// </summary>
    public static (PreferenceResult Result, double[] RowGradients) Loss(ReadOnlySpan<double> policy, ReadOnlySpan<double> reference, ReadOnlySpan<int> lengths, PreferenceOptions options)
    {
        int p = policy.Length / 2;
        double beta = options.Beta, eps = options.LabelSmoothing;
        var gradients = new double[2 * p];
        var result = new PreferenceResult(p, 0, 0, 0, 0, 0, 0, 0);
        for (int i = 0; i < p; i++)
        {
            double pc = policy[i], pr = policy[p + i], rc = reference[i], rr = reference[p + i];
            double chosenReward = beta * (pc - rc), rejectedReward = beta * (pr - rr);
            double loss, dh, scaleC = 1, scaleR = 1;
            if (options.Loss == PreferenceLossType.Ipo)
            {
                // Averaged log-probabilities: h = (π_c − ref_c)/n_c − (π_r − ref_r)/n_r.
                scaleC = 1.0 / lengths[i];
                scaleR = 1.0 / lengths[p + i];
                double h = ((pc - rc) * scaleC) - ((pr - rr) * scaleR);
                double d = h - (1 / (2 * beta));
                loss = d * d;
                dh = 2 * d;
            }
            else
            {
                double z = beta * ((pc - rc) - (pr - rr));
                loss = ((1 - eps) * -LogSigmoid(z)) + (eps * -LogSigmoid(-z));
                dh = beta * ((-(1 - eps) * Sigmoid(-z)) + (eps * Sigmoid(z)));
            }

            gradients[i] = dh * scaleC;
            gradients[p + i] = -dh * scaleR;
            if (options.RpoAlpha > 0)
            {
                // + α·(−ln π(chosen))/n_chosen
                loss += options.RpoAlpha * -pc / lengths[i];
                gradients[i] -= options.RpoAlpha / lengths[i];
            }

            result += new PreferenceResult(0, loss, chosenReward - rejectedReward, chosenReward > rejectedReward ? 1 : 0, pc, pr, chosenReward, rejectedReward);
        }

        return (result, gradients);
    }

    /// <summary>
    /// Forward and backward of one batch of pairs: adds d(<paramref name="gradientScale"/>·Σ loss)/dp to every trainable
    /// parameter's gradient (1/pairs of the optimizer step gives the mean) and returns the batch's sums.
    /// </summary>
    public static PreferenceResult ForwardBackward(LlamaForCausalLM model, IReadOnlyList<PreferencePair> pairs, PreferenceOptions options, double gradientScale, int padId = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var (batch, lengths, reference) = Prepare(model, pairs, padId);
        PreferenceResult result = default;
        model.ForwardBackward(batch, tokenLosses =>
        {
            double[] policy = RowLogProbs(tokenLosses, batch);
            var (r, rowGradients) = Loss(policy, reference, lengths, options);
            result = r;

            // ln π(row) = −Σ token losses, so d loss / d(token loss) = −d loss / d ln π on the row's scored tokens.
            var weights = new float[batch.Targets.Length];
            for (int i = 0; i < weights.Length; i++)
            {
                if (batch.Targets[i] != CrossEntropy.IgnoreIndex)
                {
                    weights[i] = (float)(-rowGradients[i / batch.T] * gradientScale);
                }
            }

            return weights;
        });
        return result;
    }

    /// <summary>Evaluates pairs without gradients (batches of <paramref name="batchSize"/> pairs): mean loss, margin and accuracy.</summary>
    public static PreferenceResult Evaluate(LlamaForCausalLM model, IReadOnlyList<PreferencePair> pairs, PreferenceOptions options, int batchSize = 8, int padId = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        options.Validate();
        PreferenceResult total = default;
        for (int start = 0; start < pairs.Count; start += batchSize)
        {
            var (batch, lengths, reference) = Prepare(model, pairs.Skip(start).Take(batchSize).ToList(), padId);
            double[] policy = RowLogProbs(model.TokenLosses(batch), batch);
            total += Loss(policy, reference, lengths, options).Result;
        }

        return total;
    }

    // The pairs' batch, completion lengths (chosen rows first) and the reference's row log-probabilities (adapters off).
    private static (CausalLmBatch Batch, int[] Lengths, double[] Reference) Prepare(LlamaForCausalLM model, IReadOnlyList<PreferencePair> pairs, int padId)
    {
        var batch = Batch(pairs, padId);
        int[] lengths = [.. pairs.Select(static p => p.Chosen.Length), .. pairs.Select(static p => p.Rejected.Length)];
        using (model.DisableAdapters())
        {
            return (batch, lengths, RowLogProbs(model.TokenLosses(batch), batch));
        }
    }

    // Σ over each row's scored tokens of −(token loss) = ln π(completion | prompt), in double.
    private static double[] RowLogProbs(float[] tokenLosses, CausalLmBatch batch)
    {
        var rows = new double[batch.B];
        for (int i = 0; i < tokenLosses.Length; i++)
        {
            if (batch.Targets[i] != CrossEntropy.IgnoreIndex)
            {
                rows[i / batch.T] -= tokenLosses[i];
            }
        }

        return rows;
    }

    private static double Sigmoid(double x) => x >= 0 ? 1 / (1 + Math.Exp(-x)) : Math.Exp(x) / (1 + Math.Exp(x));

    private static double LogSigmoid(double x) => x >= 0 ? -Math.Log(1 + Math.Exp(-x)) : x - Math.Log(1 + Math.Exp(x));
}
