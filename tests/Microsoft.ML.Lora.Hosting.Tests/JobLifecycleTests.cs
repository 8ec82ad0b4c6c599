using System.IO.Compression;
using System.Net;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>Submit → events → completion → adapter download, and cancellation, against the real host on loopback.</summary>
public sealed class JobLifecycleTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromSeconds(60);

    [Fact]
    public async Task SubmittedJobStreamsItsStepsAndItsAdapterEvaluatesLikeTheInProcessModel()
    {
        await using var host = await ServiceHost.StartAsync();
        string id = await host.SubmitAsync(new
        {
            model = "tiny",
            dataset = "a.jsonl",
            output = "run1",
            lora = new { rank = 4, alpha = 8.0 },
            training = new { learningRate = 0.02, maxSteps = 4, batchSize = 2, seed = 5, warmupRatio = 0.0 },
        });

        using var cts = new CancellationTokenSource(Limit);
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        Assert.Equal(["queued", "running", "succeeded"], events.Where(e => e.Type == "state").Select(e => e.State));
        Assert.Equal(Enumerable.Range(1, events.Count).Select(i => (long)i), events.Select(e => e.Id));
        var steps = events.Where(e => e.Type == "step").ToList();
        Assert.Equal([1, 2, 3, 4], steps.Select(e => e.Step));
        Assert.All(steps, e => Assert.Equal(4, e.Data.GetProperty("totalSteps").GetInt32()));
        Assert.All(steps, e => Assert.True(e.Data.GetProperty("tokensPerSecond").GetDouble() > 0));
        Assert.Equal(0, steps[^1].Data.GetProperty("etaSeconds").GetDouble());

        // The same run done with the library directly: identical step losses, adapter bytes and evaluation.
        string reference = Path.Combine(host.DataDirectory, "reference");
        var (losses, evaluation) = InProcessTraining.Train(
            host.ModelDirectory,
            Path.Combine(host.DatasetRoot, "a.jsonl"),
            new LoraOptions { Rank = 4, Alpha = 8 },
            new TrainingOptions { LearningRate = 0.02, MaxSteps = 4, BatchSize = 2, Seed = 5, WarmupRatio = 0 },
            reference);
        Assert.Equal(losses, steps.Select(e => e.Data.GetProperty("loss").GetDouble()));

        var job = await host.GetJobAsync(id);
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(4, job.GetProperty("step").GetInt32());
        Assert.Equal(losses[^1], job.GetProperty("loss").GetDouble());
        Assert.NotEqual(System.Text.Json.JsonValueKind.Null, job.GetProperty("finishedAt").ValueKind);
        Assert.Equal("run1", job.GetProperty("request").GetProperty("output").GetString());

        // The output root holds the finished adapter folder and nothing else (no temporary or partial sibling).
        Assert.Equal(["run1"], Directory.GetFileSystemEntries(host.OutputRoot).Select(Path.GetFileName));
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], Directory.GetFileSystemEntries(Path.Combine(host.OutputRoot, "run1")).Select(Path.GetFileName).Order());

        using var zipResponse = await host.Client.GetAsync($"/jobs/{id}/adapter");
        Assert.Equal(HttpStatusCode.OK, zipResponse.StatusCode);
        Assert.Equal("application/zip", zipResponse.Content.Headers.ContentType?.MediaType);
        string downloaded = Path.Combine(host.DataDirectory, "downloaded");
        using (var zip = new ZipArchive(await zipResponse.Content.ReadAsStreamAsync()))
        {
            Assert.Equal(["adapter_config.json", "adapter_model.safetensors"], zip.Entries.Select(e => e.FullName).Order());
            zip.ExtractToDirectory(downloaded);
        }

        Assert.Equal(File.ReadAllBytes(Path.Combine(reference, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(downloaded, "adapter_model.safetensors")));
        var rows = InProcessTraining.Rows(host.ModelDirectory, Path.Combine(host.DatasetRoot, "a.jsonl"));
        using var model = LlamaForCausalLM.Load(host.ModelDirectory);
        double baseLoss = Evaluator.Evaluate(model, rows, batchSize: 4).Mean;
        model.LoadAdapter(downloaded);
        double adapted = Evaluator.Evaluate(model, rows, batchSize: 4).Mean;
        Assert.Equal(evaluation, adapted);
        Assert.True(adapted < baseLoss - 0.05, $"training must have changed the model: base {baseLoss}, adapted {adapted}");

        // ONNX: nothing before the export; then the merged model, byte for byte what the library exports.
        using (var none = await host.Client.GetAsync($"/jobs/{id}/onnx"))
        {
            Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        }

        using (var export = await host.Client.PostAsync($"/jobs/{id}/export-onnx", null))
        {
            Assert.True(export.StatusCode == HttpStatusCode.OK, await export.Content.ReadAsStringAsync());
        }

        byte[] onnx = await host.Client.GetByteArrayAsync($"/jobs/{id}/onnx");
        string expectedOnnx = Path.Combine(host.DataDirectory, "expected.onnx");
        using (var merged = LlamaForCausalLM.Load(host.ModelDirectory))
        {
            merged.LoadAdapter(downloaded);
            merged.MergeAndUnload();
            LlamaOnnxExporter.Export(merged, expectedOnnx);
        }

        Assert.Equal(File.ReadAllBytes(expectedOnnx), onnx);

        // Re-exports while clients download: every download sees a whole export, never a 404 between two.
        var exports = Task.Run(async () =>
        {
            for (int i = 0; i < 4; i++)
            {
                using var again = await host.Client.PostAsync($"/jobs/{id}/export-onnx", null);
                Assert.Equal(HttpStatusCode.OK, again.StatusCode);
            }
        });
        int downloads = 0;
        while (!exports.IsCompleted)
        {
            using var download = await host.Client.GetAsync($"/jobs/{id}/onnx");
            Assert.Equal(HttpStatusCode.OK, download.StatusCode);
            Assert.Equal(onnx, await download.Content.ReadAsByteArrayAsync());
            downloads++;
        }

        await exports;
        Assert.True(downloads > 0);
        Assert.Equal(2, Directory.GetDirectories(Path.Combine(host.DataDirectory, "jobs", id), "onnx*").Length);

        // A second client that saw the first three events gets only the rest.
        using var cts2 = new CancellationTokenSource(Limit);
        var rest = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts2.Token, lastEventId: 3);
        Assert.Equal(events.Skip(3).Select(e => e.Id), rest.Select(e => e.Id));
    }

    [Fact]
    public async Task CancelStopsARunningJobAndCancelsAQueuedOne()
    {
        await using var host = await ServiceHost.StartAsync(o => o.MaxConcurrentJobs = 1);
        object Long(string output) => new { model = "tiny", dataset = "a.jsonl", output, training = new { maxSteps = 1_000_000, batchSize = 2, checkpointEvery = 0 } };
        string running = await host.SubmitAsync(Long("long1"));
        string queued = await host.SubmitAsync(Long("long2"));
        await host.WaitForAsync(running, j => j.GetProperty("step").GetInt32() >= 1);
        Assert.Equal("queued", (await host.GetJobAsync(queued)).GetProperty("state").GetString());

        using (var response = await host.Client.PostAsync($"/jobs/{queued}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        Assert.Equal("cancelled", (await host.GetJobAsync(queued)).GetProperty("state").GetString());

        using (var response = await host.Client.PostAsync($"/jobs/{running}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.Accepted, response.StatusCode);
        }

        var job = await host.WaitForTerminalAsync(running);
        Assert.Equal("cancelled", job.GetProperty("state").GetString());
        Assert.True(job.GetProperty("step").GetInt32() < 1_000_000);

        using var cts = new CancellationTokenSource(Limit);
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{running}/events", cts.Token);
        Assert.Equal("cancelled", events[^1].State);

        using (var again = await host.Client.PostAsync($"/jobs/{running}/cancel", null))
        {
            Assert.Equal(HttpStatusCode.Conflict, again.StatusCode);
        }

        using (var adapter = await host.Client.GetAsync($"/jobs/{running}/adapter"))
        {
            Assert.Equal(HttpStatusCode.NotFound, adapter.StatusCode);
        }

        using (var export = await host.Client.PostAsync($"/jobs/{running}/export-onnx", null))
        {
            Assert.Equal(HttpStatusCode.Conflict, export.StatusCode);
        }

        using (var missing = await host.Client.PostAsync("/jobs/nosuchjob/cancel", null))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        Assert.False(Directory.Exists(Path.Combine(host.OutputRoot, "long1")));
    }
}
