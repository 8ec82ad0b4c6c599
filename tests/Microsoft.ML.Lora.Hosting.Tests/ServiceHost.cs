using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.AspNetCore.Builder;
using Microsoft.ML.Lora.Tests.Text;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// A data directory with a tiny text model (<c>models/tiny</c>) and small datasets, and the real service
/// (Kestrel on 127.0.0.1, port 0) started over it; <see cref="RestartAsync"/> stops it gracefully and starts
/// a new one on the same directory.
/// </summary>
internal sealed class ServiceHost : IAsyncDisposable
{
    private readonly Action<LoraTrainingOptions>? configure;
    private WebApplication? app;

    private ServiceHost(string dataDirectory, Action<LoraTrainingOptions>? configure)
    {
        DataDirectory = dataDirectory;
        this.configure = configure;
    }

    public string DataDirectory { get; }

    public string ModelDirectory => Path.Combine(DataDirectory, "models", "tiny");

    public string DatasetRoot => Path.Combine(DataDirectory, "datasets");

    public string OutputRoot => Path.Combine(DataDirectory, "outputs");

    public HttpClient Client { get; private set; } = new();

    /// <summary>The running service's services (its job store and runner, for fault injection).</summary>
    public IServiceProvider Services => app!.Services;

    public Uri BaseAddress { get; private set; } = new("http://127.0.0.1/");

    /// <summary>A fresh data directory with the tiny model and datasets <c>a.jsonl</c>, <c>b.jsonl</c>, the service started.</summary>
    public static async Task<ServiceHost> StartAsync(Action<LoraTrainingOptions>? configure = null)
    {
        string dir = Path.Combine(Path.GetTempPath(), "lora-hosting-" + Guid.NewGuid().ToString("N"));
        CreateData(dir);
        var host = new ServiceHost(dir, configure);
        await host.StartServerAsync();
        return host;
    }

    /// <summary>Data set of long rows written by <see cref="CreateData"/>.</summary>
    public const string LongRows = "long.jsonl";

    /// <summary>Writes the tiny model and the datasets into <paramref name="dir"/>.</summary>
    public static void CreateData(string dir)
    {
        Directory.CreateDirectory(Path.Combine(dir, "models", "tiny"));
        TinyTextModel.Create(Path.Combine(dir, "models", "tiny"), seed: 7);
        Directory.CreateDirectory(Path.Combine(dir, "datasets"));
        WriteText(Path.Combine(dir, "datasets", "a.jsonl"), Enumerable.Range(0, 8).Select(i => $"ab ab ab {i} ab ab ab abab"));
        WriteText(Path.Combine(dir, "datasets", "b.jsonl"), Enumerable.Range(0, 8).Select(i => $"xyz {i} xyz xyz xyzxyz xyz"));
        // Long rows (about 110 tokens): a step on them takes tens of milliseconds rather than 3, so a test that
        // stops or kills the service a few steps into a job does not race the job's end on a loaded machine.
        WriteText(Path.Combine(dir, "datasets", LongRows), Enumerable.Range(0, 8).Select(i => string.Concat(Enumerable.Repeat($"row {i} of a long job; ", 5))));
    }

    public static void WriteText(string path, IEnumerable<string> texts) =>
        File.WriteAllLines(path, texts.Select(t => new JsonObject { ["text"] = t }.ToJsonString()));

    /// <summary>Stops the server gracefully (running jobs checkpoint) and starts a new one on the same data directory.</summary>
    public async Task RestartAsync()
    {
        await StopServerAsync();
        await StartServerAsync();
    }

    public async Task StopServerAsync()
    {
        if (app is not null)
        {
            await app.StopAsync();
            await app.DisposeAsync();
            app = null;
        }

        Client.Dispose();
    }

    /// <summary>POST /jobs; returns the response.</summary>
    public Task<HttpResponseMessage> PostJsonAsync(string path, object body) => Client.PostAsJsonAsync(path, body);

    /// <summary>Submits a job that must be accepted; returns its id.</summary>
    public async Task<string> SubmitAsync(object body)
    {
        using var response = await PostJsonAsync("/jobs", body);
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, $"{(int)response.StatusCode}: {text}");
        using var doc = JsonDocument.Parse(text);
        return doc.RootElement.GetProperty("id").GetString()!;
    }

    public async Task<JsonElement> GetJobAsync(string id)
    {
        using var doc = JsonDocument.Parse(await Client.GetStringAsync($"/jobs/{id}"));
        return doc.RootElement.Clone();
    }

    /// <summary>Polls GET /jobs/{id} until <paramref name="done"/> holds (or fails after <paramref name="timeout"/>).</summary>
    public async Task<JsonElement> WaitForAsync(string id, Func<JsonElement, bool> done, TimeSpan? timeout = null)
    {
        var deadline = DateTime.UtcNow + (timeout ?? TimeSpan.FromSeconds(60));
        while (true)
        {
            var job = await GetJobAsync(id);
            if (done(job))
            {
                return job;
            }

            Assert.True(DateTime.UtcNow < deadline, $"job {id} did not get there in time: {job}");
            await Task.Delay(20);
        }
    }

    public Task<JsonElement> WaitForTerminalAsync(string id, TimeSpan? timeout = null) =>
        WaitForAsync(id, j => j.GetProperty("state").GetString() is "succeeded" or "failed" or "cancelled", timeout);

    public async ValueTask DisposeAsync()
    {
        await StopServerAsync();
        try
        {
            Directory.Delete(DataDirectory, recursive: true);
        }
        catch (IOException)
        {
            // A file still open by a straggler; the temp folder is cleaned by the OS eventually.
        }
    }

    private async Task StartServerAsync()
    {
        app = LoraTrainingServer.Create(
            o =>
            {
                o.DataDirectory = DataDirectory;
                configure?.Invoke(o);
            },
            "http://127.0.0.1:0");
        await app.StartAsync();
        BaseAddress = new Uri(app.Addresses().Single());
        Client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public void UseToken(string? token) =>
        Client.DefaultRequestHeaders.Authorization = token is null ? null : new AuthenticationHeaderValue("Bearer", token);
}
