namespace Microsoft.ML.Lora.Training;

/// <summary>
/// A step produced a non-finite loss or gradient norm. Training stops before the update, so the model
/// keeps the values of the last good step, and no checkpoint is written for the failed step.
/// </summary>
public sealed class TrainingDivergedException : InvalidOperationException
{
    /// <summary>Creates the exception for 1-based <paramref name="step"/> whose batch held the rows at <paramref name="lines"/>.</summary>
    public TrainingDivergedException(int step, IReadOnlyList<int> lines, double loss, double gradNorm, double learningRate)
        : base(Describe(step, lines, loss, gradNorm, learningRate))
    {
        Step = step;
        Lines = lines;
        Loss = loss;
        GradNorm = gradNorm;
    }

    /// <summary>The 1-based optimizer step that failed.</summary>
    public int Step { get; }

    /// <summary>Source lines (<see cref="TokenRow.Line"/>) of the rows in that step's batch.</summary>
    public IReadOnlyList<int> Lines { get; }

    /// <summary>The step's mean token loss.</summary>
    public double Loss { get; }

    /// <summary>The step's gradient norm (before clipping).</summary>
    public double GradNorm { get; }

    private static string Describe(int step, IReadOnlyList<int> lines, double loss, double gradNorm, double learningRate)
    {
        var ci = System.Globalization.CultureInfo.InvariantCulture;
        string what = double.IsFinite(loss) ? $"gradient norm is {gradNorm.ToString(ci)} (loss {loss.ToString(ci)})" : $"loss is {loss.ToString(ci)}";
        return $"training diverged at step {step}: the {what} on the batch of rows at lines {string.Join(", ", lines)}. "
            + $"The model keeps the values of step {step - 1} and no checkpoint was written for step {step}. "
            + $"Hints: lower the learning rate (this step used {learningRate.ToString("G4", ci)}), keep gradient clipping on (MaxGradNorm), "
            + "and check those rows for unusual data (extremely long rows, wrong labels).";
    }
}
