using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using Microsoft.AspNetCore.Builder;
using Microsoft.ML.Lora.Training;
using System.Net.Http.Json;
using System.Text.Json;
using Xunit.Abstractions;

namespace Microsoft.ML.Lora.Hosting.Tests.Dashboard;

/// <summary>
/// The dashboard in headless Chromium against the real host on loopback. A long job runs first and the
/// page's cancel button stops it; the job queued behind it then starts while the page watches it: the
/// chart's point count grows while it runs and ends equal to its steps, and the download link serves the
/// adapter zip. Saves a screenshot. A job killed with its `lora serve` process and trained again by the next
/// one replays its early steps twice; the chart still has one point per step.
/// </summary>
public sealed class DashboardBrowserTests(ITestOutputHelper output)
{
    // Steps of the watched job: it starts while the page is open (when the job ahead of it is cancelled).
    // The watched jobs of these tests train on long rows (ServiceHost.LongRows), about 50 ms a step on two cores: with
    // the short rows of a.jsonl a step took 3 ms, and on a loaded machine the page's first sample after
    // the cancel came when half the job was done and its second after the end (seen once in four loaded
    // runs); a kill or a stop "n steps before the end" raced the job's end the same way.
    private const int Steps = 100;
    private const string Token = "dashboard-test-token";
    private static readonly TimeSpan DriverTimeout = TimeSpan.FromMinutes(3);

    // Longer than Chromium's 3 s reconnection delay of an EventSource, so that its first try is refused
    // and the next one comes after the resumed job (a second or two of training) has finished.
    private static readonly TimeSpan HostDownTime = TimeSpan.FromSeconds(3.5);

    [Fact]
    public async Task ChartGrowsWhileTheJobRunsAndEndsWithOnePointPerStep()
    {
        DashboardDriver.EnsureInstalled();
        await using var host = await ServiceHost.StartAsync(o => o.Token = Token);
        host.UseToken(Token);
        // One job at a time: a job whose data has a broken row fails first; the watched job waits behind
        // a long one until the page cancels that.
        File.WriteAllText(Path.Combine(host.DatasetRoot, "broken.jsonl"), "{\"text\": \"fine\"}\n{\"text\": \n");
        string failing = await host.SubmitAsync(new { model = "tiny", dataset = "broken.jsonl", output = "failed", training = new { maxSteps = 2 } });
        string toCancel = await host.SubmitAsync(Job("cancelled", 10_000));
        string watched = await host.SubmitAsync(Job("watched", Steps, dataset: ServiceHost.LongRows));

        string screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard.png");
        Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
        string runningScreenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard-running.png");
        File.Delete(screenshot);
        File.Delete(runningScreenshot);
        JsonElement report = await DashboardDriver.RunAsync(
            ["--url", $"{host.BaseAddress}?access_token={Token}", "--job", watched, "--steps", Steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
             "--screenshot", screenshot, "--failed-job", failing, "--cancel-job", toCancel],
            DriverTimeout);
        output.WriteLine($"dashboard screenshots: {screenshot}, {runningScreenshot}");
        output.WriteLine(report.ToString());
        Console.WriteLine($"dashboard screenshots: {screenshot}, {runningScreenshot}");

        // The page shows the failure with the server's own error text.
        JsonElement failed = await host.GetJobAsync(failing);
        Assert.Equal("failed", failed.GetProperty("state").GetString());
        Assert.Equal($"Failed: {failed.GetProperty("error").GetString()}", report.GetProperty("failed").GetProperty("message").GetString());
        Assert.Equal("queued", report.GetProperty("stateAtLoad").GetString());
        Assert.Equal("running", report.GetProperty("cancel").GetProperty("stateBefore").GetString());
        JsonElement growth = report.GetProperty("growth");
        int firstPoints = growth.GetProperty("first").GetProperty("points").GetInt32();
        int laterPoints = growth.GetProperty("later").GetProperty("points").GetInt32();
        Assert.True(laterPoints > firstPoints, $"chart went from {firstPoints} to {laterPoints} points while running");
        Assert.True(laterPoints < Steps, $"the later running sample already had {laterPoints} of {Steps} points");
        Assert.Equal(Steps, report.GetProperty("finalPoints").GetInt32());
        Assert.Equal(401, report.GetProperty("withoutToken").GetInt32());

        // The page's view agrees with the API's.
        JsonElement job = await host.GetJobAsync(watched);
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(Steps, job.GetProperty("step").GetInt32());
        Assert.Equal(Steps, job.GetProperty("totalSteps").GetInt32());
        JsonElement cancelled = await host.WaitForTerminalAsync(toCancel);
        Assert.Equal("cancelled", cancelled.GetProperty("state").GetString());
        Assert.Equal("cancelled", report.GetProperty("cancel").GetProperty("rowState").GetString());

        // The download link served the same zip as the API.
        byte[] zip = await host.Client.GetByteArrayAsync($"/jobs/{watched}/adapter");
        Assert.Equal(zip.Length, report.GetProperty("download").GetProperty("bytes").GetInt32());

        Assert.Equal(runningScreenshot, report.GetProperty("runningScreenshot").GetString());
        foreach (string file in new[] { screenshot, runningScreenshot })
        {
            byte[] png = File.ReadAllBytes(file);
            // A page with a drawn chart; a blank 1280x820 page compresses to a few kilobytes.
            Assert.True(png.Length > 10_000, $"screenshot {file} has only {png.Length} bytes");
            Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
        }
    }

    [Fact]
    public async Task PageIsSelfContainedAndServedAtRootAndDashboardBehindTheToken()
    {
        await using var host = await ServiceHost.StartAsync(o => o.Token = Token);
        foreach (string path in new[] { "/", "/dashboard" })
        {
            host.UseToken(null);
            using (HttpResponseMessage refused = await host.Client.GetAsync(path))
            {
                Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
            }

            host.UseToken(Token);
            using HttpResponseMessage page = await host.Client.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            string html = await page.Content.ReadAsStringAsync();
            Assert.Contains("<canvas id=\"chart\"", html, StringComparison.Ordinal);
            // Nothing loaded from elsewhere: no external scripts, styles, images or fonts.
            Assert.DoesNotMatch(@"(src|href)\s*=\s*""(https?:)?//", html);
            Assert.DoesNotContain("@import", html, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task ChartOfAJobRerunAfterAProcessKillHasOnePointPerStep()
    {
        DashboardDriver.EnsureInstalled();
        const int steps = 30;
        string data = Path.Combine(Path.GetTempPath(), "lora-dashboard-kill-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        try
        {
            string id;
            using (var first = await ServeProcess.StartAsync(data))
            {
                // No checkpoint before the kill (checkpointEvery 0: only at a graceful stop), so the next
                // process trains the job again from step 1 and its event log holds those steps twice.
                id = await SubmitAsync(first.Client, Job("rerun", steps, checkpointEvery: 0, dataset: ServiceHost.LongRows));
                var deadline = DateTime.UtcNow.AddSeconds(60);
                while (JsonDocument.Parse(await first.Client.GetStringAsync($"/jobs/{id}")).RootElement.GetProperty("step").GetInt32() < 5)
                {
                    Assert.True(DateTime.UtcNow < deadline, first.Log);
                    await Task.Delay(10);
                }

                first.Kill();
            }

            using var second = await ServeProcess.StartAsync(data);
            string screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard-rerun.png");
            Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
            File.Delete(screenshot);
            JsonElement report = await DashboardDriver.RunAsync(
                ["--url", second.Client.BaseAddress!.ToString(), "--job", id, "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
                 "--screenshot", screenshot, "--final-only"],
                DriverTimeout);
            output.WriteLine(report.ToString());

            // The stream replayed more step events than the job has steps; the chart keeps one point per step.
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var events = await SseClient.ReadAllAsync(second.Client, $"/jobs/{id}/events", cts.Token);
            int stepEvents = events.Count(e => e.Type == "step");
            Assert.True(stepEvents >= steps + 5, $"expected the steps before the kill to be replayed too: {stepEvents} step events for {steps} steps");
            Assert.Equal(steps, events.Where(e => e.Type == "step").Select(e => e.Step).Distinct().Count());
            Assert.Equal("succeeded", report.GetProperty("finalState").GetString());
            Assert.Equal(steps, report.GetProperty("finalPoints").GetInt32());
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }

    [Fact]
    public async Task PageFollowsAJobAcrossAGracefulRestartOfTheHost()
    {
        DashboardDriver.EnsureInstalled();
        const int steps = 150;
        // The host stops this many steps before the end, so that the resumed job finishes while the
        // browser's event stream still waits to reconnect and the list already says 'succeeded': the
        // page must then fetch the missing steps instead of showing the job done with a partial chart.
        const int stepsLeftAtStop = 40;
        string data = Path.Combine(Path.GetTempPath(), "lora-dashboard-restart-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        // The same address before and after the restart, as a service behind a fixed URL has.
        string url = $"http://127.0.0.1:{FreeLoopbackPort()}";
        WebApplication app = await StartAsync(data, url);
        try
        {
            using var client = new HttpClient { BaseAddress = new Uri(url) };
            client.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
            // One job at a time: the watched job waits behind a long one until the page is watching.
            string blocker = await SubmitAsync(client, Job("blocker", 10_000));
            string id = await SubmitAsync(client, Job("restarted", steps, checkpointEvery: 0, dataset: ServiceHost.LongRows));

            int stepAtStop = -1;
            string screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard-restart.png");
            Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
            File.Delete(screenshot);
            JsonElement report = await DashboardDriver.RunAsync(
                ["--url", $"{url}/?access_token={Token}", "--job", id, "--steps", steps.ToString(System.Globalization.CultureInfo.InvariantCulture),
                 "--screenshot", screenshot, "--through-restart", "--final-only"],
                DriverTimeout,
                async line =>
                {
                    if (!line.Contains("\"watching\"", StringComparison.Ordinal))
                    {
                        return;
                    }

                    // The page is watching: let the job run, then stop the host gracefully (the job
                    // checkpoints), leave it down a while, start it again.
                    using (HttpResponseMessage cancelled = await client.PostAsync($"/jobs/{blocker}/cancel", null))
                    {
                        Assert.Equal(HttpStatusCode.Accepted, cancelled.StatusCode);
                    }

                    var deadline = DateTime.UtcNow.AddSeconds(60);
                    JsonElement job;
                    while ((job = JsonDocument.Parse(await client.GetStringAsync($"/jobs/{id}")).RootElement).GetProperty("step").GetInt32() < steps - stepsLeftAtStop)
                    {
                        Assert.True(DateTime.UtcNow < deadline, $"the job did not get to step {steps - stepsLeftAtStop}: {job}");
                        await Task.Delay(10);
                    }

                    await app.StopAsync();
                    await app.DisposeAsync();
                    string latest = Checkpoint.FindLatest(Path.Combine(data, "jobs", id, "checkpoints"))
                        ?? throw new Xunit.Sdk.XunitException($"the graceful stop wrote no checkpoint (job before the stop: {job})");
                    stepAtStop = int.Parse(Path.GetFileName(latest)["checkpoint-".Length..], System.Globalization.CultureInfo.InvariantCulture);
                    await Task.Delay(HostDownTime);
                    app = await StartAsync(data, url);
                });
            output.WriteLine(report.ToString());

            // The page saw the job partway before the stop, and ends with every step and the final state, without a reload.
            Assert.InRange(stepAtStop, steps - stepsLeftAtStop, steps - 1);
            int seenBefore = report.GetProperty("growth").GetProperty("first").GetProperty("points").GetInt32();
            Assert.InRange(seenBefore, 1, stepAtStop);
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
            var events = await SseClient.ReadAllAsync(client, $"/jobs/{id}/events", cts.Token);
            Assert.Equal(2, events.Count(e => e.State == "running"));
            Assert.Equal("succeeded", report.GetProperty("finalState").GetString());
            Assert.Equal(steps, report.GetProperty("finalPoints").GetInt32());
        }
        finally
        {
            await app.StopAsync();
            await app.DisposeAsync();
            Directory.Delete(data, recursive: true);
        }
    }

    private static async Task<string> SubmitAsync(HttpClient client, object body)
    {
        using HttpResponseMessage submitted = await client.PostAsJsonAsync("/jobs", body);
        string text = await submitted.Content.ReadAsStringAsync();
        Assert.True(submitted.StatusCode == HttpStatusCode.Created, text);
        using JsonDocument doc = JsonDocument.Parse(text);
        return doc.RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<WebApplication> StartAsync(string data, string url)
    {
        WebApplication app = LoraTrainingServer.Create(o => { o.DataDirectory = data; o.Token = Token; }, url);
        await app.StartAsync();
        return app;
    }

    private static int FreeLoopbackPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    // Four micro-batches of the whole tiny dataset per step: a step of tens of milliseconds, so the
    // driver's 100 ms samples see the chart grow many times.
    private static object Job(string output, int steps, int? checkpointEvery = null, string dataset = "a.jsonl") => new
    {
        model = "tiny",
        dataset,
        output,
        lora = new { rank = 4 },
        training = new { maxSteps = steps, learningRate = 1e-2, batchSize = 8, gradientAccumulationSteps = 4, seed = 1, checkpointEvery },
    };
}
