using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// The disk fills up mid-job — injected into the job store (SQLite's SQLITE_FULL), and for real: <c>lora serve</c> on a
/// small tmpfs that the test fills. The service degrades instead of spinning — the job is not restarted in a loop, the
/// process stays nearly idle and nearly silent, /health says why, the API answers 503 with the reason — and once
/// there is space again the job ends failed with the reason and the next job runs.
/// </summary>
public sealed class FullDiskTests
{
    [Fact]
    public async Task ARealFullDiskIdlesTheServiceUntilSpaceIsBackThenTheNextJobRuns()
    {
        string root = Path.Combine(Path.GetTempPath(), "lora-small-disk-" + Guid.NewGuid().ToString("N"));
        string inputs = Path.Combine(root, "inputs"), disk = Path.Combine(root, "disk");
        ServiceHost.CreateData(inputs);
        try
        {
            using var serve = await ServeProcess.StartOnSmallDiskAsync(disk, 24 << 20, "--model-root", Path.Combine(inputs, "models"), "--dataset-root", Path.Combine(inputs, "datasets"), "--threads", "1");
            string id = await Submit(serve.Client, new { model = "tiny", dataset = "a.jsonl", output = "full", training = new { maxSteps = 1_000_000, checkpointEvery = 1 } });
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await Job(serve.Client, id)).GetProperty("step").GetInt32() < 3)
            {
                Assert.True(DateTime.UtcNow < deadline, serve.Log);
                await Task.Delay(20);
            }

            // Fill the disk: the job's next checkpoint or store write finds no space.
            string filler = serve.HostPath(Path.Combine(disk, "filler"));
            Fill(filler);
            deadline = DateTime.UtcNow.AddSeconds(60);
            string health;
            while (!(health = await serve.Client.GetStringAsync("/health")).Contains("Degraded", StringComparison.Ordinal))
            {
                Assert.True(DateTime.UtcNow < deadline, $"/health never said Degraded on the full disk: {health}\n{serve.Log}");
                await Task.Delay(50);
            }

            Assert.Contains("disk is full", health, StringComparison.Ordinal);

            // Three seconds of a full disk: the process stays under 30% of a core and writes a few lines at most (one per
            // backoff period). The old hot loop took a whole core and ~600 stack traces a second; idle here measured
            // 3–11% (the runtime's background compilation after start-up included).
            TimeSpan cpu = serve.CpuTime;
            int lines = serve.LogLines;
            await Task.Delay(TimeSpan.FromSeconds(3));
            double share = (serve.CpuTime - cpu).TotalSeconds / 3;
            Assert.True(share < 0.3, $"{share:P0} of a core while the disk is full\n{serve.Log}");
            Assert.True(serve.LogLines - lines <= 10, $"{serve.LogLines - lines} log lines in 3 s while the disk is full");
            Assert.Equal("running", (await Job(serve.Client, id)).GetProperty("state").GetString());

            using (var refused = await serve.Client.PostAsJsonAsync("/jobs", new { model = "tiny", dataset = "b.jsonl", output = "refused", training = new { maxSteps = 2 } }))
            {
                Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
                Assert.Contains("disk is full", JsonDocument.Parse(await refused.Content.ReadAsStringAsync()).RootElement.GetProperty("error").GetString()!, StringComparison.Ordinal);
            }

            // Space is back: the job ends failed with the reason (within the backoff), and a new job runs to the end.
            File.Delete(filler);
            deadline = DateTime.UtcNow.AddSeconds(90);
            JsonElement job;
            while ((job = await Job(serve.Client, id)).GetProperty("state").GetString() == "running")
            {
                Assert.True(DateTime.UtcNow < deadline, serve.Log);
                await Task.Delay(50);
            }

            Assert.Equal("failed", job.GetProperty("state").GetString());
            string reason = job.GetProperty("error").GetString()!;
            Assert.True(reason.Contains("disk is full", StringComparison.Ordinal) || reason.Contains("No space left on device", StringComparison.Ordinal), reason);
            string next = await Submit(serve.Client, new { model = "tiny", dataset = "b.jsonl", output = "after", training = new { maxSteps = 2 } });
            deadline = DateTime.UtcNow.AddSeconds(60);
            while ((job = await Job(serve.Client, next)).GetProperty("state").GetString() is "queued" or "running")
            {
                Assert.True(DateTime.UtcNow < deadline, serve.Log);
                await Task.Delay(20);
            }

            Assert.Equal("succeeded", job.GetProperty("state").GetString());
            Assert.Contains("\"Healthy\"", await serve.Client.GetStringAsync("/health"), StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    // Writes zeros until the file system refuses (ENOSPC).
    private static void Fill(string path)
    {
        var chunk = new byte[1 << 20];
        using var file = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.WriteThrough);
        try
        {
            while (true)
            {
                file.Write(chunk);
                file.Flush(flushToDisk: true);
            }
        }
        catch (IOException)
        {
            // The disk is full.
        }
    }

    private static async Task<string> Submit(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/jobs", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> Job(HttpClient client, string id) =>
        JsonDocument.Parse(await client.GetStringAsync($"/jobs/{id}")).RootElement.Clone();

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
