using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Examples;

/// <summary>Prints every 20th training step (and the last).</summary>
internal sealed class ConsoleProgress : IProgress<TrainingProgress>
{
    public void Report(TrainingProgress value)
    {
        if (value.Step % 20 == 0 || value.Step == value.TotalSteps)
        {
            Console.WriteLine($"step {value.Step}/{value.TotalSteps} loss {value.Loss:F4}");
        }
    }
}
