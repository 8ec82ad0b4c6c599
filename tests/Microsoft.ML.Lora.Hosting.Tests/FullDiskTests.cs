using System.Net;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// The job store refuses writes mid-job as on a full disk (SQLite's SQLITE_FULL, injected): the service degrades
/// instead of spinning — the job is not restarted in a loop, /health says why, the API answers 503 with the reason
/// — and once writes work again the job ends failed with the reason and the next job runs.
/// </summary>
public sealed class FullDiskTests
{
    [Fact]
    public async Task AFullDiskFailsTheJobOnceSpaceIsBackWithoutSpinningMeanwhile()
    {
        await using var host = await ServiceHost.StartAsync();
        var store = host.Services.GetRequiredService<JobStore>();
        var runner = host.Services.GetServices<IHostedService>().OfType<TrainingJobRunner>().Single();
        string id = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "full", training = new { maxSteps = 1_000_000 } });
        await host.WaitForAsync(id, j => j.GetProperty("step").GetInt32() >= 2);
        int starts = runner.Starts;

        bool full = true;
        store.SimulateFullDisk = () => Volatile.Read(ref full);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (runner.UnrecordedEnds == 0)
        {
            Assert.True(DateTime.UtcNow < deadline, "the job did not stop on the full disk");
            await Task.Delay(20);
        }

        // Two seconds of a full disk: no restart of the job (it used to restart ~600 times a second).
        await Task.Delay(TimeSpan.FromSeconds(2));
        Assert.Equal(starts, runner.Starts);
        Assert.Empty(runner.ActiveJobs);

        using (var health = await host.Client.GetAsync("/health"))
        {
            string text = await health.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, health.StatusCode);
            using var doc = JsonDocument.Parse(text);
            Assert.Equal("Degraded", doc.RootElement.GetProperty("status").GetString());
            Assert.Contains("disk is full", text, StringComparison.Ordinal);
        }

        using (var refused = await host.PostJsonAsync("/jobs", new { model = "tiny", dataset = "b.jsonl", output = "refused", training = new { maxSteps = 2 } }))
        {
            string text = await refused.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
            Assert.Contains("disk is full", JsonDocument.Parse(text).RootElement.GetProperty("error").GetString()!, StringComparison.Ordinal);
        }

        // Space is back: the job's end is stored (failed, with the reason) and a new job runs to the end.
        Volatile.Write(ref full, false);
        var job = await host.WaitForTerminalAsync(id, TimeSpan.FromSeconds(60));
        Assert.Equal("failed", job.GetProperty("state").GetString());
        Assert.Contains("disk is full", job.GetProperty("error").GetString()!, StringComparison.Ordinal);
        string next = await host.SubmitAsync(new { model = "tiny", dataset = "b.jsonl", output = "after", training = new { maxSteps = 2 } });
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(next)).GetProperty("state").GetString());
        using (var health = await host.Client.GetAsync("/health"))
        {
            Assert.Contains("\"Healthy\"", await health.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }
    }
}
