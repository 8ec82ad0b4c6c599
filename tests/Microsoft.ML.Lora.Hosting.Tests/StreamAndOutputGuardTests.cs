using System.IO.Compression;
using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Http;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// Event streams that must end (or never start) and keep every event for a slow reader; output folders that
/// must not nest; downloads that carry the adapter's own files only; and concurrency that really runs jobs side by side.
/// </summary>
public sealed class StreamAndOutputGuardTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task AStreamEndsForAClientThatAlreadyHasTheEnd()
    {
        await using var host = await ServiceHost.StartAsync();
        string id = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "done", training = new { maxSteps = 2 } });
        using var cts = new CancellationTokenSource(Limit);
        var all = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        long end = all[^1].Id;
        Assert.Equal("succeeded", all[^1].State);

        // What an EventSource does after the stream ended: it reconnects with the last id. 204 stops it, where an
        // open stream would never end (nothing more will come).
        foreach (long last in new[] { end, end + 1000 })
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, $"/jobs/{id}/events");
            request.Headers.Add("Last-Event-ID", last.ToString(System.Globalization.CultureInfo.InvariantCulture));
            using var response = await host.Client.SendAsync(request, cts.Token);
            Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        }

        var tail = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token, lastEventId: end - 1);
        Assert.Equal([end], tail.Select(e => e.Id));

        // A client claiming an id past a running job's events still sees its stream end with the job.
        string running = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "long", training = new { maxSteps = 1_000_000 } });
        await host.WaitForAsync(running, j => j.GetProperty("step").GetInt32() >= 1);
        var ahead = SseClient.ReadAllAsync(host.Client, $"/jobs/{running}/events", cts.Token, lastEventId: 1_000_000_000);
        using (var cancel = await host.Client.PostAsync($"/jobs/{running}/cancel", null, cts.Token))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        Assert.Empty(await ahead.WaitAsync(Limit));
    }

    [Fact]
    public async Task ASlowReaderGetsEveryEventInOrder()
    {
        string data = Path.Combine(Path.GetTempPath(), "lora-slow-" + Guid.NewGuid().ToString("N"));
        var hub = new JobEventHub();
        var options = Options.Create(new LoraTrainingOptions { DataDirectory = data });
        try
        {
            using var store = new JobStore(options, hub, NullLogger<JobStore>.Instance);
            string id = store.Insert("{}", new JobPaths("m", "d", Path.Combine(data, "out")), out _)!.Id;
            Assert.True(store.TryTransition(id, [JobState.Queued], JobState.Running));

            // The client's connection is stuck at its first write while the job records far more steps than a
            // live feed holds; then it drains.
            var body = new GatedStream();
            var context = new DefaultHttpContext { Response = { Body = body } };
            var streaming = EventStream.WriteAsync(context, id, store, hub, CancellationToken.None);
            await body.Entered.WaitAsync(Limit);
            int steps = (JobEventHub.Capacity * 3) + 7;
            for (int step = 1; step <= steps; step++)
            {
                store.RecordStep(id, step, steps, 1.0 / step, $$"""{"step":{{step}}}""");
            }

            Assert.True(store.TryTransition(id, [JobState.Running], JobState.Succeeded));
            body.Open();
            await streaming.WaitAsync(Limit);

            var ids = Encoding.UTF8.GetString(body.ToArray()).Split('\n')
                .Where(l => l.StartsWith("id: ", StringComparison.Ordinal))
                .Select(l => long.Parse(l[4..], System.Globalization.CultureInfo.InvariantCulture));
            Assert.Equal(Enumerable.Range(1, steps + 3).Select(i => (long)i), ids);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task OutputsInsideOrAroundAnotherJobsOutputAreRefused()
    {
        await using var host = await ServiceHost.StartAsync();
        string outer = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "outer", training = new { maxSteps = 1 } });
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(outer)).GetProperty("state").GetString());
        string running = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "team/run", training = new { maxSteps = 1_000_000 } });

        foreach (var (output, words) in new[] { ("outer/inner", $"inside the output folder of job '{outer}'"), ("team", $"contains the output folder of job '{running}'"), ("team/run/x", $"inside the output folder of job '{running}'") })
        {
            using var response = await host.PostJsonAsync("/jobs", new { model = "tiny", dataset = "a.jsonl", output, training = new { maxSteps = 1 } });
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, $"{output}: {(int)response.StatusCode} {text}");
            Assert.Contains(words, text, StringComparison.Ordinal);
        }

        // A sibling whose name merely starts the same is fine.
        await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "outer2", training = new { maxSteps = 1 } });
        using var cancel = await host.Client.PostAsync($"/jobs/{running}/cancel", null);
        Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
    }

    [Fact]
    public async Task TheAdapterZipHoldsTheAdapterFilesOnly()
    {
        await using var host = await ServiceHost.StartAsync();
        string id = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "zipped", training = new { maxSteps = 1 } });
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(id)).GetProperty("state").GetString());
        string output = Path.Combine(host.OutputRoot, "zipped");
        string[] adapterFiles = Directory.GetFiles(output).Select(Path.GetFileName).Order(StringComparer.Ordinal).ToArray()!;

        // Whatever lands in the folder later (a link to the job database, a linked or a real subfolder) stays out.
        string secret = Path.Combine(host.DataDirectory, "secret");
        Directory.CreateDirectory(secret);
        File.WriteAllText(Path.Combine(secret, "key.txt"), "private");
        File.CreateSymbolicLink(Path.Combine(output, "db-link"), Path.Combine(host.DataDirectory, "jobs.db"));
        Directory.CreateSymbolicLink(Path.Combine(output, "dir-link"), secret);
        Directory.CreateDirectory(Path.Combine(output, "sub"));
        File.WriteAllText(Path.Combine(output, "sub", "other.txt"), "other");

        using var response = await host.Client.GetAsync($"/jobs/{id}/adapter");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var zip = new ZipArchive(new MemoryStream(await response.Content.ReadAsByteArrayAsync()));
        Assert.Equal(adapterFiles, zip.Entries.Select(e => e.FullName).Order(StringComparer.Ordinal));
        foreach (var entry in zip.Entries)
        {
            using var copy = new MemoryStream();
            using (var s = entry.Open())
            {
                s.CopyTo(copy);
            }

            Assert.Equal(File.ReadAllBytes(Path.Combine(output, entry.FullName)), copy.ToArray());
        }
    }

    [Fact]
    public async Task TwoJobsTrainAtOnceWhenTwoAreAllowed()
    {
        await using var host = await ServiceHost.StartAsync(o => o.MaxConcurrentJobs = 2);
        string[] ids = new string[3];
        for (int i = 0; i < ids.Length; i++)
        {
            ids[i] = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = $"p{i}", training = new { maxSteps = 1_000_000 } });
        }

        // Both of the first two make progress at the same time; the third waits for a slot.
        await host.WaitForAsync(ids[0], j => j.GetProperty("step").GetInt32() >= 1);
        await host.WaitForAsync(ids[1], j => j.GetProperty("step").GetInt32() >= 1);
        Assert.Equal("running", (await host.GetJobAsync(ids[0])).GetProperty("state").GetString());
        Assert.Equal("queued", (await host.GetJobAsync(ids[2])).GetProperty("state").GetString());

        using (var cancel = await host.Client.PostAsync($"/jobs/{ids[0]}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        await host.WaitForAsync(ids[2], j => j.GetProperty("step").GetInt32() >= 1);
        Assert.Equal("running", (await host.GetJobAsync(ids[1])).GetProperty("state").GetString());
        foreach (string id in ids[1..])
        {
            using var cancel = await host.Client.PostAsync($"/jobs/{id}/cancel", null);
            Assert.Equal(HttpStatusCode.Accepted, cancel.StatusCode);
        }

        foreach (string id in ids)
        {
            Assert.Equal("cancelled", (await host.WaitForTerminalAsync(id)).GetProperty("state").GetString());
        }
    }

    /// <summary>A response body whose first write waits until <see cref="Open"/>; everything written is kept.</summary>
    private sealed class GatedStream : MemoryStream
    {
        private readonly TaskCompletionSource entered = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource open = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Entered => entered.Task;

        public void Open() => open.TrySetResult();

        public override async Task FlushAsync(CancellationToken cancellationToken)
        {
            entered.TrySetResult();
            await open.Task.WaitAsync(cancellationToken);
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            entered.TrySetResult();
            await open.Task.WaitAsync(cancellationToken);
            await base.WriteAsync(buffer, cancellationToken);
        }

        public override async Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        {
            entered.TrySetResult();
            await open.Task.WaitAsync(cancellationToken);
            await base.WriteAsync(buffer, offset, count, cancellationToken);
        }
    }
}
