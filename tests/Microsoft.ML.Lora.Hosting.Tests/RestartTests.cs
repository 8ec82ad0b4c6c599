using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>A graceful stop mid-job checkpoints it; the next host on the same data directory resumes and finishes it exactly.</summary>
public sealed class RestartTests
{
    internal const int Steps = 60;

    internal static object LongJob(string output, int checkpointEvery) => new
    {
        model = "tiny",
        dataset = ServiceHost.LongRows,
        output,
        lora = new { rank = 2, dropout = 0.1 },
        // Two micro-batches of long rows per step: enough work per step that a stop lands mid-run even on a fast machine.
        training = new { learningRate = 1e-3, maxSteps = Steps, batchSize = 2, gradientAccumulationSteps = 2, seed = 3, checkpointEvery },
    };

    // Both restart tests build identical data directories (ServiceHost.CreateData), so one reference run serves both.
    private static readonly Lazy<byte[]> Reference = new(TrainReference);

    /// <summary>The adapter of <see cref="LongJob"/> trained without interruption, in-process.</summary>
    internal static byte[] UninterruptedAdapter() => Reference.Value;

    private static byte[] TrainReference()
    {
        string dataDirectory = Path.Combine(Path.GetTempPath(), "lora-reference-" + Guid.NewGuid().ToString("N"));
        try
        {
            ServiceHost.CreateData(dataDirectory);
            string reference = Path.Combine(dataDirectory, "reference");
            InProcessTraining.Train(
                Path.Combine(dataDirectory, "models", "tiny"),
                Path.Combine(dataDirectory, "datasets", ServiceHost.LongRows),
                new LoraOptions { Rank = 2, Dropout = 0.1 },
                new TrainingOptions { LearningRate = 1e-3, MaxSteps = Steps, BatchSize = 2, GradientAccumulationSteps = 2, Seed = 3 },
                reference);
            return File.ReadAllBytes(Path.Combine(reference, "adapter_model.safetensors"));
        }
        finally
        {
            Directory.Delete(dataDirectory, recursive: true);
        }
    }

    [Fact]
    public async Task GracefulStopCheckpointsTheRunningJobAndTheNextHostResumesIt()
    {
        await using var host = await ServiceHost.StartAsync();
        string id = await host.SubmitAsync(LongJob("resumed", checkpointEvery: 0));
        string queued = await host.SubmitAsync(new { model = "tiny", dataset = "b.jsonl", output = "after", training = new { maxSteps = 2 } });
        // A client following the job's events does not hold the shutdown up: its stream ends when the host
        // stops. The stop comes once that client has seen step 5.
        using var watching = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var fifth = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var watcher = SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", watching.Token, received: e =>
        {
            if (e.Type == "step" && e.Step >= 5)
            {
                fifth.TrySetResult();
            }
        });
        await fifth.Task.WaitAsync(TimeSpan.FromSeconds(60));
        var clock = System.Diagnostics.Stopwatch.StartNew();
        await host.StopServerAsync();
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"stopping took {clock.Elapsed}");
        var seen = await watcher.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(seen.Last(e => e.Type == "state").State == "running", $"the job must still be running when the host stops; last event: {seen[^1]}");
        string checkpoints = Path.Combine(host.DataDirectory, "jobs", id, "checkpoints");
        string latest = Checkpoint.FindLatest(checkpoints) ?? throw new Xunit.Sdk.XunitException("no checkpoint written on shutdown");
        int saved = int.Parse(Path.GetFileName(latest)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture);
        Assert.InRange(saved, 5, Steps - 1);

        await host.RestartAsync();
        var job = await host.WaitForTerminalAsync(id);
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(Steps, job.GetProperty("step").GetInt32());
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(queued)).GetProperty("state").GetString());

        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        Assert.Equal(["queued", "running", "running", "succeeded"], events.Where(e => e.Type == "state").Select(e => e.State));
        int resumedAt = events.FindLastIndex(e => e.State == "running");
        var before = events.Take(resumedAt).Where(e => e.Type == "step").Select(e => e.Step).ToList();
        var after = events.Skip(resumedAt).Where(e => e.Type == "step").Select(e => e.Step).ToList();
        Assert.Equal(Enumerable.Range(1, saved), before);
        Assert.Equal(Enumerable.Range(saved + 1, Steps - saved), after);

        Assert.Equal(UninterruptedAdapter(), File.ReadAllBytes(Path.Combine(host.OutputRoot, "resumed", "adapter_model.safetensors")));
    }

    [Fact]
    public async Task AJobLeftRunningWithoutACheckpointTrainsAgainFromTheStartAndEndsTheSame()
    {
        await using var host = await ServiceHost.StartAsync();
        string id = await host.SubmitAsync(LongJob("rerun", checkpointEvery: 0));
        await host.WaitForAsync(id, j => j.GetProperty("step").GetInt32() >= 3);
        await host.StopServerAsync();

        // As after a kill before the first checkpoint: the row says running, and there is nothing to resume from.
        string checkpoints = Path.Combine(host.DataDirectory, "jobs", id, "checkpoints");
        Assert.NotNull(Checkpoint.FindLatest(checkpoints));
        Directory.Delete(checkpoints, recursive: true);

        await host.RestartAsync();
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(id)).GetProperty("state").GetString());
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        int rerunAt = events.FindLastIndex(e => e.State == "running");
        Assert.Equal(["queued", "running", "running", "succeeded"], events.Where(e => e.Type == "state").Select(e => e.State));
        Assert.Equal(Enumerable.Range(1, Steps), events.Skip(rerunAt).Where(e => e.Type == "step").Select(e => e.Step));
        Assert.Equal(UninterruptedAdapter(), File.ReadAllBytes(Path.Combine(host.OutputRoot, "rerun", "adapter_model.safetensors")));
    }
}
