namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>Where a job is in its life; written lowercase in JSON and in the store.</summary>
public enum JobState
{
    /// <summary>Waiting for a free slot.</summary>
    Queued,

    /// <summary>Training (or interrupted by a host stop, to resume on the next start).</summary>
    Running,

    /// <summary>Finished; the adapter is in its output folder.</summary>
    Succeeded,

    /// <summary>Stopped by an error (see the job's <c>error</c>).</summary>
    Failed,

    /// <summary>Cancelled through the API.</summary>
    Cancelled,
}

/// <summary>Helpers on <see cref="JobState"/>.</summary>
public static class JobStates
{
    /// <summary>True for succeeded, failed and cancelled: nothing more will happen to the job.</summary>
    public static bool IsTerminal(this JobState state) => state is JobState.Succeeded or JobState.Failed or JobState.Cancelled;

    /// <summary>The lowercase name used in JSON and in the store.</summary>
    public static string ToWire(this JobState state) => state.ToString().ToLowerInvariant();

    /// <summary>Parses the lowercase name.</summary>
    public static JobState Parse(string text) => Enum.Parse<JobState>(text, ignoreCase: true);
}
