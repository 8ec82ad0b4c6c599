namespace Microsoft.ML.Lora.MLNet;

/// <summary>What Fit did: the run's size, the loss of every step and the validation losses.</summary>
/// <param name="TrainingRows">Rows of the training data (one pass).</param>
/// <param name="TruncatedRows">Training rows cut to MaxSequenceLength tokens.</param>
/// <param name="Steps">Optimizer steps taken.</param>
/// <param name="Epochs">Passes over the data: steps / steps per epoch.</param>
/// <param name="StepLosses">Mean loss of each step's rows, before its update (cross-entropy; mean squared error for regression; token cross-entropy for a causal LM).</param>
/// <param name="ValidationLosses">The ValidationSet's loss after each epoch and the last step, in order; empty without a ValidationSet.</param>
/// <param name="Device">The device the model trained on, e.g. "native (cpu)".</param>
public sealed record LoraTrainingMetrics(
    int TrainingRows,
    int TruncatedRows,
    int Steps,
    double Epochs,
    IReadOnlyList<double> StepLosses,
    IReadOnlyList<LoraValidationLoss> ValidationLosses,
    string Device)
{
    /// <summary>The last validation loss (after the last step), or null without a ValidationSet.</summary>
    public double? ValidationLoss => ValidationLosses.Count > 0 ? ValidationLosses[^1].Loss : null;
}

/// <summary>A validation loss and when it was measured.</summary>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="Epoch">Passes over the training data done.</param>
/// <param name="Loss">Mean loss over the ValidationSet's rows.</param>
public readonly record struct LoraValidationLoss(int Step, double Epoch, double Loss);
