namespace Microsoft.ML.Lora.Training;

/// <summary>Shape of the learning rate after warmup.</summary>
public enum LearningRateScheduleKind
{
    /// <summary>The base rate until the end.</summary>
    Constant,

    /// <summary>Falls linearly from the base rate to 0 at the last step.</summary>
    Linear,

    /// <summary>Half a cosine from the base rate to 0 at the last step.</summary>
    Cosine,
}

/// <summary>
/// Linear warmup from 0, then <see cref="LearningRateScheduleKind"/>. Formulas are those of Hugging Face
/// transformers' <c>get_{constant,linear,cosine}_schedule_with_warmup</c>, so runs compare one to one:
/// for the optimizer step with 0-based index i of N total and W warmup steps,
/// warmup (i &lt; W): lr·i/W; constant: lr; linear: lr·(N−i)/(N−W); cosine: lr·½(1+cos(π·(i−W)/(N−W))).
/// As in transformers, the first step of a warmup has rate 0 (it still feeds the Adam moments).
/// </summary>
public sealed class LearningRateSchedule
{
    /// <summary>Creates a schedule.</summary>
    /// <param name="kind">Shape after warmup.</param>
    /// <param name="baseRate">Peak learning rate.</param>
    /// <param name="warmupSteps">W, steps of linear warmup.</param>
    /// <param name="totalSteps">N, optimizer steps of the whole run.</param>
    public LearningRateSchedule(LearningRateScheduleKind kind, double baseRate, int warmupSteps, int totalSteps)
    {
        if (!Enum.IsDefined(kind))
        {
            throw new ArgumentException($"schedule kind {(int)kind} is not one of Constant, Linear, Cosine", nameof(kind));
        }

        if (!double.IsFinite(baseRate) || baseRate <= 0)
        {
            throw new ArgumentException($"base learning rate {baseRate} must be finite and positive", nameof(baseRate));
        }

        if (totalSteps < 1)
        {
            throw new ArgumentException($"total steps {totalSteps} must be at least 1", nameof(totalSteps));
        }

        if (warmupSteps < 0 || warmupSteps > totalSteps)
        {
            throw new ArgumentException($"warmup steps {warmupSteps} must be in [0, total steps = {totalSteps}]", nameof(warmupSteps));
        }

        Kind = kind;
        BaseRate = baseRate;
        WarmupSteps = warmupSteps;
        TotalSteps = totalSteps;
    }

    /// <summary>Shape after warmup.</summary>
    public LearningRateScheduleKind Kind { get; }

    /// <summary>Peak rate.</summary>
    public double BaseRate { get; }

    /// <summary>W.</summary>
    public int WarmupSteps { get; }

    /// <summary>N.</summary>
    public int TotalSteps { get; }

    /// <summary>Learning rate of the optimizer step with 0-based index <paramref name="step"/>.</summary>
    public double At(int step)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(step);
        if (step < WarmupSteps)
        {
            return BaseRate * step / WarmupSteps;
        }

        // max(1, ·) as in transformers: with W = N there is no decay phase to divide by.
        double decaySteps = Math.Max(1, TotalSteps - WarmupSteps);
        double progress = (step - WarmupSteps) / decaySteps;
        return Kind switch
        {
            LearningRateScheduleKind.Constant => BaseRate,
            LearningRateScheduleKind.Linear => BaseRate * Math.Max(0.0, 1.0 - progress),
            _ => BaseRate * Math.Max(0.0, 0.5 * (1.0 + Math.Cos(Math.PI * Math.Min(1.0, progress)))),
        };
    }
}
