using System.Diagnostics;
using System.Text.Json;
using Microsoft.ML.Lora.Hosting.Storage;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Running;

/// <summary>
/// Stores each optimizer step of a job as a <c>step</c> event (step, loss, learning rate, tokens/s,
/// ETA, epoch). Called on the training thread, once the step (and its checkpoint) is complete.
/// The ETA is the mean step time of this process's session times the steps left.
/// </summary>
internal sealed class JobProgressRecorder(JobStore store, string jobId, string checkpointDirectory, int checkpointsToKeep) : IProgress<TrainingProgress>
{
    private readonly Stopwatch clock = Stopwatch.StartNew();
    private int firstStep = -1;

    public void Report(TrainingProgress value)
    {
        if (firstStep < 0)
        {
            firstStep = value.Step - 1;
        }

        int done = value.Step - firstStep;
        double? eta = done > 0 ? clock.Elapsed.TotalSeconds / done * (value.TotalSteps - value.Step) : null;
        string data = JsonSerializer.Serialize(new StepData(
            value.Step, value.TotalSteps, value.Loss, value.LearningRate, Finite(value.TokensPerSecond), eta, value.Epoch, Finite(value.GradNorm), value.ValidationLoss), HostingJson.Options);
        store.RecordStep(jobId, value.Step, value.TotalSteps, value.Loss, data);
        PruneCheckpoints();
    }

    // Keeps the newest checkpoints only: a long run with a short interval would otherwise fill the disk.
    private void PruneCheckpoints()
    {
        if (!Directory.Exists(checkpointDirectory))
        {
            return;
        }

        var old = Directory.EnumerateDirectories(checkpointDirectory, "checkpoint-*")
            .Select(d => (Path: d, Step: int.TryParse(Path.GetFileName(d)["checkpoint-".Length..], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int s) ? s : -1))
            .Where(x => x.Step >= 0)
            .OrderByDescending(x => x.Step)
            .Skip(checkpointsToKeep);
        foreach (var (path, _) in old)
        {
            Directory.Delete(path, recursive: true);
        }
    }

    private static double Finite(double value) => double.IsFinite(value) ? value : 0;

    private sealed record StepData(int Step, int TotalSteps, double Loss, double LearningRate, double TokensPerSecond, double? EtaSeconds, double Epoch, double GradNorm, double? ValidationLoss);
}
