namespace Microsoft.ML.Lora.Training;

/// <summary>Reported after each optimizer step.</summary>
/// <param name="Step">Optimizer steps done (1-based number of the step just taken).</param>
/// <param name="TotalSteps">Optimizer steps of the run.</param>
/// <param name="Epoch">Fractional epoch: steps done / steps per epoch (as transformers logs it).</param>
/// <param name="Loss">Mean token loss of this step's rows, before the update.</param>
/// <param name="LearningRate">Learning rate the step used.</param>
/// <param name="GradNorm">Global gradient norm before clipping.</param>
/// <param name="Tokens">Target tokens of the step.</param>
/// <param name="TokensPerSecond">Target tokens per second of wall time for this step.</param>
/// <param name="ValidationLoss">Mean token loss on the validation rows, when evaluated after this step; else null.</param>
/// <param name="Preference">With <see cref="TrainingOptions.Preference"/>: the step's pairs (margins, accuracy, log-probabilities); <paramref name="Loss"/> is then their mean preference loss.</param>
/// <param name="ValidationPreference">With <see cref="TrainingOptions.Preference"/>, when evaluated: the validation pairs.</param>
/// <param name="Grpo">With <see cref="TrainingOptions.Grpo"/>: the step's rewards and objective statistics.</param>
/// <param name="ValidationGrpo">With <see cref="TrainingOptions.Grpo"/>, when evaluated: the rewards of the held-out prompts' completions (clip ratio and KL 0).</param>
public sealed record TrainingProgress(int Step, int TotalSteps, double Epoch, double Loss, double LearningRate, double GradNorm, long Tokens, double TokensPerSecond, double? ValidationLoss, PreferenceResult? Preference = null, PreferenceResult? ValidationPreference = null, GrpoStepStats? Grpo = null, GrpoStepStats? ValidationGrpo = null);

/// <summary>What a GRPO step sampled and scored (TRL's logged names in <c>metrics.jsonl</c>: reward, reward_std, …).</summary>
/// <param name="Completions">Completions sampled.</param>
/// <param name="RewardMean">Mean reward.</param>
/// <param name="RewardStd">Mean within-group standard deviation of the rewards.</param>
/// <param name="CompletionLength">Mean completion length in tokens.</param>
/// <param name="ClipRatio">Fraction of tokens whose ratio was clipped.</param>
/// <param name="Kl">Mean KL estimate per token (0 when KlBeta is 0).</param>
public readonly record struct GrpoStepStats(int Completions, double RewardMean, double RewardStd, double CompletionLength, double ClipRatio, double Kl);
