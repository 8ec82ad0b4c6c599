using System.Globalization;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// The real thing: <c>lora serve</c> as its own process, killed (SIGKILL, no shutdown code) in the middle of a
/// job and started again on the same data directory. The job resumes from its last checkpoint, finishes
/// with the adapter an uninterrupted run writes, and no row of the job table is lost.
/// </summary>
public sealed class ProcessKillTests
{
    [Fact]
    public async Task KilledServerResumesTheJobFromItsCheckpointAndFinishesWithTheSameAdapter()
    {
        string data = Path.Combine(Path.GetTempPath(), "lora-kill-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        try
        {
            string id;
            JsonElement[] before;
            using (var first = await ServeProcess.StartAsync(data))
            {
                id = await Submit(first.Client, RestartTests.LongJob("killed", checkpointEvery: 1));
                await Submit(first.Client, new { model = "tiny", dataset = "b.jsonl", output = "queued1", training = new { maxSteps = 2 } });
                await Submit(first.Client, new { model = "tiny", dataset = "b.jsonl", output = "queued2", training = new { maxSteps = 2 } });
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while ((await Job(first.Client, id)).GetProperty("step").GetInt32() < 5)
                {
                    Assert.True(DateTime.UtcNow < deadline, first.Log);
                    await Task.Delay(10);
                }

                before = await Jobs(first.Client);
                first.Kill();
            }

            string checkpoints = Path.Combine(data, "jobs", id, "checkpoints");
            string latest = Checkpoint.FindLatest(checkpoints) ?? throw new Xunit.Sdk.XunitException("no checkpoint before the kill");
            int saved = int.Parse(Path.GetFileName(latest)["checkpoint-".Length..], CultureInfo.InvariantCulture);
            Assert.InRange(saved, 5, RestartTests.Steps - 1);

            using (var second = await ServeProcess.StartAsync(data))
            {
                var deadline = DateTime.UtcNow.AddSeconds(90);
                JsonElement[] after;
                while ((after = await Jobs(second.Client)).Any(j => j.GetProperty("state").GetString() is "queued" or "running"))
                {
                    Assert.True(DateTime.UtcNow < deadline, second.Log);
                    await Task.Delay(20);
                }

                // Every row survived: same ids, submission times and requests, and all finished.
                Assert.Equal(before.Length, after.Length);
                foreach (var (was, now) in before.Zip(after))
                {
                    Assert.Equal(was.GetProperty("id").GetString(), now.GetProperty("id").GetString());
                    Assert.Equal(was.GetProperty("createdAt").GetString(), now.GetProperty("createdAt").GetString());
                    Assert.Equal(was.GetProperty("request").GetRawText(), now.GetProperty("request").GetRawText());
                    Assert.Equal("succeeded", now.GetProperty("state").GetString());
                }

                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
                var events = await SseClient.ReadAllAsync(second.Client, $"/jobs/{id}/events", cts.Token);
                int resumedAt = events.FindLastIndex(e => e.State == "running");
                Assert.True(events.Take(resumedAt).Count(e => e.State == "running") == 1, "one running event before the kill");
                var newSteps = events.Skip(resumedAt).Where(e => e.Type == "step").Select(e => e.Step).ToList();
                Assert.True(newSteps[0] > 1, $"the restarted job began again at step {newSteps[0]}");
                Assert.Equal(Enumerable.Range(saved + 1, RestartTests.Steps - saved), newSteps);
                Assert.Equal("succeeded", events[^1].State);
            }

            Assert.Equal(RestartTests.UninterruptedAdapter(), File.ReadAllBytes(Path.Combine(data, "outputs", "killed", "adapter_model.safetensors")));
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task SigtermStopsTheServerAfterCheckpointingTheRunningJob()
    {
        string data = Path.Combine(Path.GetTempPath(), "lora-term-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        try
        {
            using var serve = await ServeProcess.StartAsync(data);
            string id = await Submit(serve.Client, new { model = "tiny", dataset = "a.jsonl", output = "o", training = new { maxSteps = 1_000_000, checkpointEvery = 0 } });
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await Job(serve.Client, id)).GetProperty("step").GetInt32() < 3)
            {
                Assert.True(DateTime.UtcNow < deadline, serve.Log);
                await Task.Delay(10);
            }

            Assert.Equal(0, serve.Terminate(TimeSpan.FromSeconds(30)));
            Assert.NotNull(Checkpoint.FindLatest(Path.Combine(data, "jobs", id, "checkpoints")));
            Assert.Contains("resumes on the next start", serve.Log, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task AJobThatDiesWithTheProcessThreeTimesIsFailedInsteadOfResumedForever()
    {
        string data = Path.Combine(Path.GetTempPath(), "lora-crashloop-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        try
        {
            string? id = null;
            for (int run = 0; run < 3; run++)
            {
                using var server = await ServeProcess.StartAsync(data);
                id ??= await Submit(server.Client, RestartTests.LongJob("crashing", checkpointEvery: 1));
                int reached = run == 0 ? 0 : (await Job(server.Client, id)).GetProperty("step").GetInt32();
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while ((await Job(server.Client, id)).GetProperty("step").GetInt32() <= reached)
                {
                    Assert.True(DateTime.UtcNow < deadline, server.Log);
                    await Task.Delay(10);
                }

                Assert.Equal("running", (await Job(server.Client, id)).GetProperty("state").GetString());
                server.Kill();
            }

            using (var last = await ServeProcess.StartAsync(data))
            {
                var deadline = DateTime.UtcNow.AddSeconds(60);
                JsonElement job;
                while ((job = await Job(last.Client, id!)).GetProperty("state").GetString() != "failed")
                {
                    Assert.True(DateTime.UtcNow < deadline, last.Log);
                    await Task.Delay(20);
                }

                Assert.Contains("stopped 3 times while this job ran", job.GetProperty("error").GetString()!, StringComparison.Ordinal);

                // The service itself keeps serving: a new job runs to the end.
                string next = await Submit(last.Client, new { model = "tiny", dataset = "b.jsonl", output = "after", training = new { maxSteps = 2 } });
                while ((job = await Job(last.Client, next)).GetProperty("state").GetString() is "queued" or "running")
                {
                    Assert.True(DateTime.UtcNow < deadline, last.Log);
                    await Task.Delay(20);
                }

                Assert.Equal("succeeded", job.GetProperty("state").GetString());
            }
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<string> Submit(HttpClient client, object body)
    {
        using var response = await client.PostAsJsonAsync("/jobs", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, text);
        return JsonDocument.Parse(text).RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<JsonElement> Job(HttpClient client, string id) =>
        JsonDocument.Parse(await client.GetStringAsync($"/jobs/{id}")).RootElement.Clone();

    private static async Task<JsonElement[]> Jobs(HttpClient client) =>
        JsonDocument.Parse(await client.GetStringAsync("/jobs")).RootElement.Clone().EnumerateArray().ToArray();
}
