namespace Microsoft.ML.Lora.Training;

/// <summary>What <c>Trainer.Train</c> did.</summary>
/// <param name="GlobalStep">Optimizer steps done in total (including those before a resume).</param>
/// <param name="StepLosses">Mean token loss of each step this call ran, in order.</param>
/// <param name="LastValidationLoss">Validation loss of the last evaluation, or null when there are no validation rows.</param>
/// <param name="BestValidationLoss">Lowest validation loss seen in the run, or null.</param>
/// <param name="TruncatedRows">Training rows cut to <see cref="TrainingOptions.MaxSequenceLength"/>.</param>
/// <param name="LastCheckpoint">Folder of the last checkpoint written, or null.</param>
public sealed record TrainingResult(int GlobalStep, IReadOnlyList<double> StepLosses, double? LastValidationLoss, double? BestValidationLoss, int TruncatedRows, string? LastCheckpoint);
