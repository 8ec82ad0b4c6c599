using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Running;

/// <summary>Healthy when the job store answers a query; the description counts the jobs by state.</summary>
internal sealed class TrainingHealthCheck(JobStore store, TrainingJobRunner runner) : IHealthCheck
{
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        try
        {
            var jobs = store.List();
            string counts = string.Join(", ", jobs.GroupBy(j => j.State).OrderBy(g => g.Key).Select(g => $"{g.Count()} {g.Key.ToString().ToLowerInvariant()}"));
            return Task.FromResult(HealthCheckResult.Healthy($"{jobs.Count} jobs ({(counts.Length == 0 ? "none" : counts)}); {runner.ActiveJobs.Count} training now"));
        }
        catch (Exception e)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy($"job store {store.DatabasePath} does not answer: {e.Message}", e));
        }
    }
}
