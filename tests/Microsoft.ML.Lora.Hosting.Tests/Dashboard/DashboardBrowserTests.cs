using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Lora.Models;
using Xunit.Abstractions;

namespace Microsoft.ML.Lora.Hosting.Tests.Dashboard;

/// <summary>
/// The dashboard in headless Chromium against the real host on loopback: a job trains while the page
/// watches it; the chart's point count grows while the job runs and ends equal to the job's steps; the
/// download link serves the adapter zip; the cancel button cancels a second job. Saves a screenshot.
/// </summary>
public sealed class DashboardBrowserTests : IAsyncLifetime
{
    // Steps of the watched job: long enough (several seconds on two busy cores) for the page to see
    // the chart grow between two samples while the job is still running.
    private const int Steps = 60;
    private const string Token = "dashboard-test-token";
    private static readonly TimeSpan DriverTimeout = TimeSpan.FromMinutes(3);

    private readonly ITestOutputHelper output;
    private readonly string dataDir = Path.Combine(Path.GetTempPath(), "lora-dashboard-" + Guid.NewGuid().ToString("N"));
    private WebApplication? app;
    private HttpClient? http;

    public DashboardBrowserTests(ITestOutputHelper output)
    {
        this.output = output;
    }

    public async Task InitializeAsync()
    {
        WriteTinyModelAndData();
        var builder = WebApplication.CreateBuilder();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Logging.ClearProviders();
        builder.Services.AddLoraTraining(o =>
        {
            o.DataDirectory = dataDir;
            o.Token = Token;
            o.MaxConcurrentJobs = 1;
        });
        app = builder.Build();
        app.MapLoraTraining();
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        http = new HttpClient { BaseAddress = new Uri(address + "/") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", Token);
    }

    public async Task DisposeAsync()
    {
        http?.Dispose();
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
        }

        try
        {
            Directory.Delete(dataDir, recursive: true);
        }
        catch (IOException)
        {
            // a leftover temp folder is harmless
        }
    }

    [Fact]
    public async Task ChartGrowsWhileTheJobRunsAndEndsWithOnePointPerStep()
    {
        DashboardDriver.EnsureInstalled();
        string watched = await SubmitAsync("watched", Steps);
        // Queued behind the watched job (one job at a time); the page cancels it.
        string toCancel = await SubmitAsync("cancelled", 10_000);

        string screenshot = Path.Combine(AppContext.BaseDirectory, "artifacts", "dashboard.png");
        File.Delete(screenshot);
        JsonElement report = DashboardDriver.Run(
            ["--url", $"{http!.BaseAddress}?access_token={Token}", "--job", watched, "--steps", Steps.ToString(),
             "--screenshot", screenshot, "--cancel-job", toCancel],
            DriverTimeout);
        output.WriteLine($"dashboard screenshot: {screenshot}");
        output.WriteLine(report.ToString());
        Console.WriteLine($"dashboard screenshot: {screenshot}");

        JsonElement growth = report.GetProperty("growth");
        int firstPoints = growth.GetProperty("first").GetProperty("points").GetInt32();
        int laterPoints = growth.GetProperty("later").GetProperty("points").GetInt32();
        Assert.True(laterPoints > firstPoints, $"chart went from {firstPoints} to {laterPoints} points while running");
        Assert.True(laterPoints < Steps, $"the later running sample already had {laterPoints} of {Steps} points");
        Assert.Equal(Steps, report.GetProperty("finalPoints").GetInt32());
        Assert.Equal(401, report.GetProperty("withoutToken").GetInt32());

        // The page's view agrees with the API's.
        JsonElement job = await GetJobAsync(watched);
        Assert.Equal("succeeded", job.GetProperty("state").GetString());
        Assert.Equal(Steps, job.GetProperty("step").GetInt32());
        Assert.Equal(Steps, job.GetProperty("totalSteps").GetInt32());
        JsonElement cancelled = await GetJobAsync(toCancel);
        Assert.Equal("cancelled", cancelled.GetProperty("state").GetString());
        Assert.Equal("cancelled", report.GetProperty("cancel").GetProperty("rowState").GetString());

        // The download link served the same zip as the API.
        byte[] zip = await http.GetByteArrayAsync($"jobs/{watched}/adapter");
        Assert.Equal(zip.Length, report.GetProperty("download").GetProperty("bytes").GetInt32());

        byte[] png = File.ReadAllBytes(screenshot);
        Assert.True(png.Length > 10_000, $"screenshot {screenshot} has only {png.Length} bytes");
        Assert.Equal(new byte[] { 0x89, (byte)'P', (byte)'N', (byte)'G' }, png[..4]);
    }

    [Fact]
    public async Task PageIsServedAtRootAndDashboardBehindTheToken()
    {
        foreach (string path in new[] { "", "dashboard" })
        {
            using HttpResponseMessage page = await http!.GetAsync(path);
            Assert.Equal(HttpStatusCode.OK, page.StatusCode);
            Assert.Equal("text/html", page.Content.Headers.ContentType?.MediaType);
            string html = await page.Content.ReadAsStringAsync();
            Assert.Contains("id=\"chart\"", html, StringComparison.Ordinal);
            Assert.DoesNotContain("<script src", html, StringComparison.Ordinal);

            using var anonymous = new HttpClient { BaseAddress = http.BaseAddress };
            using HttpResponseMessage refused = await anonymous.GetAsync(path);
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }
    }

    private async Task<string> SubmitAsync(string output, int steps)
    {
        var body = new
        {
            model = "tiny",
            dataset = "rows.jsonl",
            output,
            lora = new { rank = 4 },
            training = new { maxSteps = steps, learningRate = 1e-2, batchSize = 4, seed = 1 },
        };
        using HttpResponseMessage response = await http!.PostAsJsonAsync("jobs", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, $"POST /jobs answered {(int)response.StatusCode}: {text}");
        using JsonDocument doc = JsonDocument.Parse(text);
        return doc.RootElement.GetProperty("id").GetString()!;
    }

    private async Task<JsonElement> GetJobAsync(string id)
    {
        using JsonDocument doc = JsonDocument.Parse(await http!.GetStringAsync($"jobs/{id}"));
        return doc.RootElement.Clone();
    }

    private void WriteTinyModelAndData()
    {
        string modelDir = Path.Combine(dataDir, "models", "tiny");
        var config = LlamaConfig.Create(vocabSize: 64, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
        using (var model = LlamaForCausalLM.CreateRandom(config, seed: 3))
        {
            model.Save(modelDir);
        }

        string datasets = Path.Combine(dataDir, "datasets");
        Directory.CreateDirectory(datasets);
        var rows = Enumerable.Range(0, 32).Select(r =>
            $"{{\"input_ids\": [{string.Join(", ", Enumerable.Range(0, 24).Select(i => 3 + (r * 5 + i * (1 + r % 3)) % 61))}]}}");
        File.WriteAllLines(Path.Combine(datasets, "rows.jsonl"), rows);
    }
}
