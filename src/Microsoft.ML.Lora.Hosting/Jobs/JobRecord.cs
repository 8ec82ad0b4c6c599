using System.Text.Json;

namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>A job as the API shows it (camelCase JSON).</summary>
/// <param name="Id">Job id.</param>
/// <param name="State">Current state.</param>
/// <param name="CreatedAt">When it was submitted (UTC).</param>
/// <param name="StartedAt">When it first started training, or null.</param>
/// <param name="FinishedAt">When it reached a terminal state, or null.</param>
/// <param name="Step">Optimizer steps done.</param>
/// <param name="TotalSteps">Optimizer steps of the run (0 until the data is read).</param>
/// <param name="Loss">Loss of the last step, or null.</param>
/// <param name="Error">Why it failed, or null.</param>
/// <param name="Request">The submitted body.</param>
public sealed record JobRecord(
    string Id,
    JobState State,
    DateTimeOffset CreatedAt,
    DateTimeOffset? StartedAt,
    DateTimeOffset? FinishedAt,
    int Step,
    int TotalSteps,
    double? Loss,
    string? Error,
    JsonElement Request);

/// <summary>One stored event of a job: its per-job sequence number, its type (<c>step</c> or <c>state</c>) and its JSON data.</summary>
/// <param name="Sequence">1-based, increasing per job (the SSE <c>id</c>).</param>
/// <param name="Type">SSE event name.</param>
/// <param name="Data">JSON payload.</param>
public sealed record JobEvent(long Sequence, string Type, string Data)
{
    /// <summary>SSE event name of a training step.</summary>
    public const string StepType = "step";

    /// <summary>SSE event name of a state change.</summary>
    public const string StateType = "state";
}

/// <summary>The absolute paths a request resolved to (kept in the store, not shown by the API).</summary>
/// <param name="ModelDirectory">Base model folder.</param>
/// <param name="DatasetPath">Training data file.</param>
/// <param name="OutputDirectory">Adapter folder to create.</param>
public sealed record JobPaths(string ModelDirectory, string DatasetPath, string OutputDirectory);
