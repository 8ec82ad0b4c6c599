using System.Text.Json;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>Many clients at once: every job is accounted for and every event stream ends, with no deadlock.</summary>
public sealed class ConcurrencyTests
{
    private const int Jobs = 50;

    [Fact]
    public async Task FiftyConcurrentSubmissionsAndEventStreamsAllFinish()
    {
        await using var host = await ServiceHost.StartAsync(o => o.MaxConcurrentJobs = 2);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(120));

        // Each client submits its job and follows its events; all 50 run at once.
        var clients = Enumerable.Range(0, Jobs).Select(async i =>
        {
            int steps = (i % 3) + 1;
            string id = await host.SubmitAsync(new
            {
                model = "tiny",
                dataset = i % 2 == 0 ? "a.jsonl" : "b.jsonl",
                output = $"c{i:D2}",
                lora = new { rank = 2 },
                training = new { maxSteps = steps, batchSize = 2, seed = i },
            });
            var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
            return (Id: id, Steps: steps, Events: events);
        }).ToArray();
        // Meanwhile, never more jobs train at once than configured.
        var all = Task.WhenAll(clients);
        int mostRunning = 0;
        while (!all.IsCompleted)
        {
            using var snapshot = JsonDocument.Parse(await host.Client.GetStringAsync("/jobs", cts.Token));
            mostRunning = Math.Max(mostRunning, snapshot.RootElement.EnumerateArray().Count(j => j.GetProperty("state").GetString() == "running"));
            await Task.WhenAny(all, Task.Delay(5, cts.Token));
        }

        var results = await all.WaitAsync(cts.Token);
        Assert.InRange(mostRunning, 1, 2);

        foreach (var (id, steps, events) in results)
        {
            Assert.Equal(["queued", "running", "succeeded"], events.Where(e => e.Type == "state").Select(e => e.State));
            Assert.Equal(Enumerable.Range(1, steps), events.Where(e => e.Type == "step").Select(e => e.Step));
            Assert.Equal(Enumerable.Range(1, events.Count).Select(n => (long)n), events.Select(e => e.Id));
        }

        using var list = JsonDocument.Parse(await host.Client.GetStringAsync("/jobs", cts.Token));
        var jobs = list.RootElement.EnumerateArray().ToList();
        Assert.Equal(results.Select(r => r.Id).Order(), jobs.Select(j => j.GetProperty("id").GetString()!).Order());
        Assert.All(jobs, j => Assert.Equal("succeeded", j.GetProperty("state").GetString()));
        var created = jobs.Select(j => j.GetProperty("createdAt").GetDateTimeOffset()).ToList();
        Assert.Equal(created.OrderDescending(), created);
        Assert.Equal(Jobs, Directory.GetDirectories(host.OutputRoot).Count(d => File.Exists(Path.Combine(d, "adapter_model.safetensors"))));
    }
}
