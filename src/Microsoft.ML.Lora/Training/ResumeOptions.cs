using System.Globalization;

namespace Microsoft.ML.Lora.Training;

/// <summary>Which options a resumed run may change (<see cref="Trainer.Resume"/>).</summary>
internal static class ResumeOptions
{
    /// <summary>Throws naming every option of <paramref name="requested"/> that differs from the checkpoint's and must not.</summary>
    public static void CheckUnchanged(TrainingOptions saved, TrainingOptions requested, string checkpointDirectory)
    {
        // Output places, run length and cadence may change; these decide what each step computes.
        (string Name, object? Saved, object? Requested)[] fixedOptions =
        [
            (nameof(TrainingOptions.LearningRate), saved.LearningRate, requested.LearningRate),
            (nameof(TrainingOptions.WeightDecay), saved.WeightDecay, requested.WeightDecay),
            (nameof(TrainingOptions.Beta1), saved.Beta1, requested.Beta1),
            (nameof(TrainingOptions.Beta2), saved.Beta2, requested.Beta2),
            (nameof(TrainingOptions.Epsilon), saved.Epsilon, requested.Epsilon),
            (nameof(TrainingOptions.BatchSize), saved.BatchSize, requested.BatchSize),
            (nameof(TrainingOptions.GradientAccumulationSteps), saved.GradientAccumulationSteps, requested.GradientAccumulationSteps),
            (nameof(TrainingOptions.MaxSequenceLength), saved.MaxSequenceLength, requested.MaxSequenceLength),
            (nameof(TrainingOptions.WarmupRatio), saved.WarmupRatio, requested.WarmupRatio),
            (nameof(TrainingOptions.WarmupSteps), saved.WarmupSteps, requested.WarmupSteps),
            (nameof(TrainingOptions.Schedule), saved.Schedule, requested.Schedule),
            (nameof(TrainingOptions.MaxGradNorm), saved.MaxGradNorm, requested.MaxGradNorm),
            (nameof(TrainingOptions.Seed), saved.Seed, requested.Seed),
            (nameof(TrainingOptions.Shuffle), saved.Shuffle, requested.Shuffle),
            (nameof(TrainingOptions.Packing), saved.Packing, requested.Packing),
            (nameof(TrainingOptions.ValidationFraction), saved.ValidationFraction, requested.ValidationFraction),
            (nameof(TrainingOptions.Preference), saved.Preference, requested.Preference),
            (nameof(TrainingOptions.Grpo), saved.Grpo, requested.Grpo),
        ];
        var changed = fixedOptions.Where(static o => !Equals(o.Saved, o.Requested))
            .Select(static o => string.Create(CultureInfo.InvariantCulture, $"{o.Name} (checkpoint {o.Saved ?? "none"}, asked {o.Requested ?? "none"})"))
            .ToList();
        if (changed.Count > 0)
        {
            throw new ArgumentException($"{checkpointDirectory}: a resumed run keeps the options that decide its steps; these differ from the checkpoint's: {string.Join("; ", changed)}. Only where it writes, how long it runs and how often it evaluates or checkpoints may change");
        }
    }
}
