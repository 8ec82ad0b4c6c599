using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>How <see cref="GroupRelativePolicy"/> averages the per-token losses (TRL's <c>loss_type</c>).</summary>
public enum GrpoLossType
{
    /// <summary>The original GRPO (Shao et al. 2024): each completion's tokens averaged, then the completions.</summary>
    Grpo,

    /// <summary>Every token of the batch weighs the same: Σ token losses / Σ completion lengths.</summary>
    Bnpo,

    /// <summary>Dr. GRPO (Liu et al. 2025): Σ token losses / (completions × the maximum completion length).</summary>
    DrGrpo,
}

/// <summary>Options of the GRPO objective.</summary>
public sealed record GrpoOptions
{
    /// <summary>Completions sampled per prompt (G). Default 8.</summary>
    public int GroupSize { get; init; } = 8;

    /// <summary>The ratio clip ε: the policy ratio is kept within [1 − ε, 1 + ε]. Default 0.2.</summary>
    public double Epsilon { get; init; } = 0.2;

    /// <summary>The KL penalty's weight β toward the reference (the model without its adapter). Default 0 (TRL's), no reference pass.</summary>
    public double KlBeta { get; init; }

    /// <summary>Divide each group's advantages by its reward standard deviation (TRL's <c>scale_rewards</c>). Default true.</summary>
    public bool ScaleRewards { get; init; } = true;

    /// <summary>How per-token losses are averaged. Default <see cref="GrpoLossType.Bnpo"/>.</summary>
    public GrpoLossType Loss { get; init; } = GrpoLossType.Bnpo;

    /// <summary>The longest completion sampled, in tokens (also <see cref="GrpoLossType.DrGrpo"/>'s normalizer). Default 256.</summary>
    public int MaxCompletionLength { get; init; } = 256;

    /// <summary>Sampling temperature of the completions. Default 1 (TRL's).</summary>
    public double Temperature { get; init; } = 1.0;

    /// <summary>
    /// Optimizer steps per generation batch (μ, TRL's <c>num_iterations</c>): the completions sampled for a step's
    /// prompts are reused for μ consecutive steps, π_old staying the policy that sampled them, so from the second
    /// step on the ratio moves away from 1 and the clip acts. A run takes μ steps per batch of prompts. Default 1.
    /// </summary>
    public int Iterations { get; init; } = 1;

    /// <summary>The most <see cref="GroupSize"/> allowed.</summary>
    public const int MaxGroupSize = 65536;

    /// <summary>The most <see cref="Iterations"/> allowed.</summary>
    public const int MaxIterations = 1024;

    /// <summary>Checks the options; the message names the option.</summary>
    public void Validate()
    {
        if (GroupSize is < 2 or > MaxGroupSize)
        {
            throw new ArgumentOutOfRangeException(nameof(GroupSize), GroupSize, $"GroupSize must be 2 … {MaxGroupSize}: advantages compare completions within a group");
        }

        if (!(Epsilon > 0 && Epsilon < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Epsilon), Epsilon, "Epsilon must be in (0, 1)");
        }

        if (!(KlBeta >= 0) || !double.IsFinite(KlBeta))
        {
            throw new ArgumentOutOfRangeException(nameof(KlBeta), KlBeta, "KlBeta must be a finite number ≥ 0");
        }

        if (!(Temperature > 0) || !double.IsFinite(Temperature))
        {
            throw new ArgumentOutOfRangeException(nameof(Temperature), Temperature, "Temperature must be a finite number > 0 (GRPO samples its completions)");
        }

        if (Iterations is < 1 or > MaxIterations)
        {
            throw new ArgumentOutOfRangeException(nameof(Iterations), Iterations, $"Iterations must be in [1, {MaxIterations}]: optimizer steps per batch of sampled completions");
        }

        if (MaxCompletionLength is < 1 or > GenerationOptions.MaxTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxCompletionLength), MaxCompletionLength, $"MaxCompletionLength must be 1 … {GenerationOptions.MaxTokens}");
        }
    }
}

/// <summary>Scores one completion of a prompt; <paramref name="row"/> is the prompt's row (its <see cref="TokenRow.Fields"/> hold e.g. a reference answer).</summary>
public delegate double GrpoReward(string prompt, string completion, TokenRow row);

/// <summary>One sampled completion for the GRPO objective.</summary>
/// <param name="Prompt">Prompt ids.</param>
/// <param name="Completion">Sampled completion ids (at least one).</param>
/// <param name="OldLogProbs">ln π_old of each completion token, from the policy that sampled it.</param>
/// <param name="Advantage">The completion's advantage within its group (<see cref="GroupRelativePolicy.Advantages"/>).</param>
public sealed record GrpoSample(int[] Prompt, int[] Completion, float[] OldLogProbs, double Advantage);

/// <summary>Sums over a batch of completions: the objective and what TRL logs.</summary>
/// <param name="Loss">The batch's loss (already normalized as <see cref="GrpoOptions.Loss"/> says).</param>
/// <param name="Tokens">Completion tokens.</param>
/// <param name="ClippedTokens">Tokens whose ratio the clip held.</param>
/// <param name="KlSum">Σ over tokens of the KL estimate.</param>
public readonly record struct GrpoResult(double Loss, long Tokens, long ClippedTokens, double KlSum)
{
    /// <summary>Fraction of tokens clipped.</summary>
    public double ClipRatio => Tokens == 0 ? 0 : (double)ClippedTokens / Tokens;

    /// <summary>Mean KL per token.</summary>
    public double MeanKl => Tokens == 0 ? 0 : KlSum / Tokens;
}

/// <summary>
/// Group relative policy optimization (Shao et al. 2024, as TRL implements it) with LoRA: each completion's advantage
/// is its reward minus its group's mean (divided by the group's standard deviation), and each token's loss is
/// −min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A) + β·KL with ρ = π/π_old and KL = π_ref/π − ln(π_ref/π) − 1 (the k3 estimator),
/// the reference being the model with its adapters disabled.
/// </summary>
public static class GroupRelativePolicy
{
    /// <summary>
    /// Advantages of rewards laid out group after group: r − mean(group), divided by (std(group) + 1e-4) with
    /// <paramref name="scale"/> (the unbiased standard deviation, as torch.std).
    /// </summary>
    public static double[] Advantages(ReadOnlySpan<double> rewards, int groupSize, bool scale = true)
    {
        if (groupSize < 2 || rewards.Length % groupSize != 0)
        {
            throw new ArgumentException($"{rewards.Length} rewards do not split into groups of {groupSize} (at least 2)", nameof(groupSize));
        }

        var advantages = new double[rewards.Length];
        for (int g = 0; g < rewards.Length; g += groupSize)
        {
            var group = rewards.Slice(g, groupSize);
            var (mean, std) = MeanAndStd(group);
            for (int i = 0; i < groupSize; i++)
            {
                advantages[g + i] = scale ? (group[i] - mean) / (std + 1e-4) : group[i] - mean;
            }
        }

        return advantages;
    }

    /// <summary>The mean and the unbiased standard deviation (as torch.std) of one group's rewards (at least 2).</summary>
    public static (double Mean, double Std) MeanAndStd(ReadOnlySpan<double> group)
    {
        double mean = 0;
        foreach (double r in group)
        {
            mean += r;
        }

        mean /= group.Length;
        double variance = 0;
        foreach (double r in group)
        {
            variance += (r - mean) * (r - mean);
        }

        return (mean, Math.Sqrt(variance / (group.Length - 1)));
    }

    /// <summary>
    /// The objective's value and d loss / d ln π per token of a batch from the policy's, the sampling policy's and the
    /// reference's token log-probabilities (per sample, completion tokens only).
    /// </summary>
    public static (GrpoResult Result, double[][] Gradients) Objective(IReadOnlyList<double[]> policy, IReadOnlyList<GrpoSample> samples, IReadOnlyList<double[]>? reference, GrpoOptions options)
    {
        long tokens = samples.Sum(static s => (long)s.Completion.Length);
        double loss = 0, kl = 0;
        long clipped = 0;
        var gradients = new double[samples.Count][];
        for (int i = 0; i < samples.Count; i++)
        {
            var sample = samples[i];
            int n = sample.Completion.Length;
            double norm = options.Loss switch
            {
                GrpoLossType.Grpo => (double)n * samples.Count,
                GrpoLossType.Bnpo => tokens,
                _ => (double)samples.Count * options.MaxCompletionLength,
            };
            gradients[i] = new double[n];
            double a = sample.Advantage;
            for (int t = 0; t < n; t++)
            {
                double logp = policy[i][t];
                double ratio = Math.Exp(logp - sample.OldLogProbs[t]);
                double clippedRatio = Math.Clamp(ratio, 1 - options.Epsilon, 1 + options.Epsilon);
                double unclippedTerm = ratio * a, clippedTerm = clippedRatio * a;

                // −min(ρA, clip(ρ)A): the gradient flows through ρ only where the unclipped term is the smaller one.
                double tokenLoss = -Math.Min(unclippedTerm, clippedTerm);
                double dlogp = unclippedTerm <= clippedTerm ? -ratio * a : 0;
                if (clippedTerm < unclippedTerm)
                {
                    clipped++;
                }

                if (reference is not null && options.KlBeta > 0)
                {
                    double diff = reference[i][t] - logp;
                    double k3 = Math.Exp(diff) - diff - 1;
                    kl += k3;
                    tokenLoss += options.KlBeta * k3;
                    dlogp += options.KlBeta * (1 - Math.Exp(diff));
                }

                loss += tokenLoss / norm;
                gradients[i][t] = dlogp / norm;
            }
        }

        return (new GrpoResult(loss, tokens, clipped, kl), gradients);
    }

    /// <summary>
    /// Forward and backward of one batch of samples: adds d(<paramref name="gradientScale"/>·loss)/dp to every trainable
    /// parameter's gradient and returns the batch's loss and statistics.
    /// </summary>
    public static GrpoResult ForwardBackward(LlamaForCausalLM model, IReadOnlyList<GrpoSample> samples, GrpoOptions options, double gradientScale = 1, int padId = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var (batch, starts) = Batch(samples, padId);
        IReadOnlyList<double[]>? reference = null;
        if (options.KlBeta > 0)
        {
            using (model.DisableAdapters())
            {
                reference = TokenLogProbs(model.TokenLosses(batch), batch, samples, starts);
            }
        }

        GrpoResult result = default;
        model.ForwardBackward(batch, tokenLosses =>
        {
            var policy = TokenLogProbs(tokenLosses, batch, samples, starts);
            var (r, gradients) = Objective(policy, samples, reference, options);
            result = r;

            // ln π(token) = −(token loss): d loss / d(token loss) = −d loss / d ln π.
            var weights = new float[batch.Targets.Length];
            for (int i = 0; i < samples.Count; i++)
            {
                for (int t = 0; t < samples[i].Completion.Length; t++)
                {
                    weights[(i * batch.T) + starts[i] + t] = (float)(-gradients[i][t] * gradientScale);
                }
            }

            return weights;
        });
        return result;
    }

    /// <summary>ln π of every completion token of <paramref name="samples"/> under the model as it is (no gradients).</summary>
    public static IReadOnlyList<double[]> LogProbs(LlamaForCausalLM model, IReadOnlyList<GrpoSample> samples, int padId = 0)
    {
        var (batch, starts) = Batch(samples, padId);
        return TokenLogProbs(model.TokenLosses(batch), batch, samples, starts);
    }

    // Rows prompt + completion, labels on the completion; starts[i] is the batch column whose target is completion token 0.
    private static (CausalLmBatch Batch, int[] Starts) Batch(IReadOnlyList<GrpoSample> samples, int padId)
    {
        if (samples.Count == 0)
        {
            throw new ArgumentException("a GRPO batch needs at least one sample", nameof(samples));
        }

        var rows = new List<int[]>(samples.Count);
        var labels = new List<int[]?>(samples.Count);
        var starts = new int[samples.Count];
        for (int i = 0; i < samples.Count; i++)
        {
            var s = samples[i];
            if (s.Prompt.Length == 0 || s.Completion.Length == 0 || s.OldLogProbs.Length != s.Completion.Length)
            {
                throw new ArgumentException($"sample {i}: needs a prompt, a completion and one old log-probability per completion token (prompt {s.Prompt.Length}, completion {s.Completion.Length}, old log-probabilities {s.OldLogProbs.Length})", nameof(samples));
            }

            var (row, label) = CompletionRow.Of(s.Prompt, s.Completion);
            rows.Add(row);
            labels.Add(label);
            starts[i] = s.Prompt.Length - 1;
        }

        return (CausalLmBatch.FromRows(rows, labels, padId), starts);
    }

    private static double[][] TokenLogProbs(float[] tokenLosses, CausalLmBatch batch, IReadOnlyList<GrpoSample> samples, int[] starts)
    {
        var result = new double[samples.Count][];
        for (int i = 0; i < samples.Count; i++)
        {
            result[i] = new double[samples[i].Completion.Length];
            for (int t = 0; t < result[i].Length; t++)
            {
                result[i][t] = -tokenLosses[(i * batch.T) + starts[i] + t];
            }
        }

        return result;
    }
}
