using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Running;

/// <summary>
/// Healthy when the job store answers a query, Degraded (with the reason) while it refuses writes, Unhealthy when
/// it does not answer; the description counts the jobs by state.
/// </summary>
internal sealed class TrainingHealthCheck(JobStore store, TrainingJobRunner runner) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var jobs = store.List();
            string counts = string.Join(", ", jobs.GroupBy(j => j.State).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}"));
            string summary = $"{jobs.Count} jobs ({(counts.Length == 0 ? "none" : counts)}); {runner.ActiveJobs.Count} training now";
            if (runner.StoreTrouble is { } trouble)
            {
                return Task.FromResult(HealthCheckResult.Degraded($"job store {store.DatabasePath} cannot be written: {trouble}; {runner.UnrecordedEnds} finished job(s) wait to be recorded, no job starts until it can; {summary}"));
            }

            return Task.FromResult(HealthCheckResult.Healthy(summary));
        }
        catch (Exception e)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"job store {store.DatabasePath} does not answer: {e.Message}", e));
        }
    }
}
