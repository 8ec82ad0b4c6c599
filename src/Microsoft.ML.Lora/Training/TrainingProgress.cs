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
public sealed record TrainingProgress(int Step, int TotalSteps, double Epoch, double Loss, double LearningRate, double GradNorm, long Tokens, double TokensPerSecond, double? ValidationLoss, PreferenceResult? Preference = null, PreferenceResult? ValidationPreference = null);
