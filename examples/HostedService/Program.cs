// Hosts the LoRA training service in a WebApplication of its own, submits one job over HTTP on a tiny
// built-in model and data set, prints its progress from the event stream, downloads the adapter, and exits.
//   dotnet run --project examples/HostedService -c Release [-- --data-dir DIR] [--wait]
// --wait keeps the host (and its dashboard) running after the job until Ctrl+C.
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using HostedService;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.ML.Lora.Hosting;

string dataDir = Path.GetFullPath(Arg("--data-dir") ?? Path.Combine("artifacts", "hosted-example"));
bool wait = args.Contains("--wait");
string token = Convert.ToHexString(RandomNumberGenerator.GetBytes(16)).ToLowerInvariant();

// The service resolves every model and dataset path under its roots: put the tiny ones there.
var workspace = TinyWorkspace.Create(Path.Combine(dataDir, "models"), Path.Combine(dataDir, "datasets"));

var builder = WebApplication.CreateBuilder();
builder.WebHost.UseUrls("http://127.0.0.1:0"); // loopback, any free port
builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.Services.AddLoraTraining(options =>
{
    options.DataDirectory = dataDir;
    options.Token = token;
});

await using var app = builder.Build();
app.MapLoraTraining();
await app.StartAsync();
string address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
Console.WriteLine($"service:   {address} (data in {dataDir})");
Console.WriteLine($"dashboard: {address}/?access_token={token}");

CancellationToken stopping = app.Lifetime.ApplicationStopping;
using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = Timeout.InfiniteTimeSpan };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);

var request = new
{
    model = workspace.Model,
    dataset = workspace.Dataset,
    output = $"adapter-{DateTime.UtcNow:yyyyMMdd-HHmmss}",
    lora = new { rank = 4, alpha = 8 },
    training = new { maxSteps = 30, learningRate = 1e-2, batchSize = 4, seed = 1 },
};
using HttpResponseMessage submitted = await http.PostAsJsonAsync("jobs", request, stopping);
if (!submitted.IsSuccessStatusCode)
{
    Console.Error.WriteLine($"POST /jobs answered {(int)submitted.StatusCode}: {await submitted.Content.ReadAsStringAsync(stopping)}");
    await app.StopAsync();
    return 1;
}

string id = (await submitted.Content.ReadFromJsonAsync<JsonElement>(stopping)).GetProperty("id").GetString()!;
Console.WriteLine($"job {id} submitted: {request.training.maxSteps} steps of LoRA r={request.lora.rank} on {workspace.Model}");

string finalState = "unknown";
await foreach (ServerSentEvent e in ServerSentEvents.ReadAsync(http, $"jobs/{id}/events", stopping))
{
    using JsonDocument data = JsonDocument.Parse(e.Data);
    JsonElement d = data.RootElement;
    if (e.Event == "step")
    {
        string eta = d.TryGetProperty("etaSeconds", out JsonElement etaValue) && etaValue.ValueKind == JsonValueKind.Number ? $"{etaValue.GetDouble():0.0}s" : "-";
        Console.WriteLine($"  step {d.GetProperty("step").GetInt32(),3}/{d.GetProperty("totalSteps").GetInt32()}  loss {d.GetProperty("loss").GetDouble():0.0000}  " +
            $"lr {d.GetProperty("learningRate").GetDouble():0.00e+0}  {d.GetProperty("tokensPerSecond").GetDouble(),7:0} tok/s  eta {eta}");
    }
    else if (e.Event == "state")
    {
        finalState = d.GetProperty("state").GetString()!;
        string error = d.TryGetProperty("error", out JsonElement err) && err.ValueKind == JsonValueKind.String ? $": {err.GetString()}" : "";
        Console.WriteLine($"job {id} {finalState}{error}");
        if (finalState is "succeeded" or "failed" or "cancelled")
        {
            break;
        }
    }
}

if (finalState == "succeeded")
{
    string zip = Path.Combine(dataDir, $"{id}-adapter.zip");
    await using (Stream body = await http.GetStreamAsync($"jobs/{id}/adapter", stopping))
    await using (FileStream file = File.Create(zip))
    {
        await body.CopyToAsync(file, stopping);
    }

    Console.WriteLine($"adapter:   {zip} ({new FileInfo(zip).Length} bytes, PEFT layout)");
}

if (wait)
{
    Console.WriteLine("serving until Ctrl+C");
    await app.WaitForShutdownAsync();
}
else
{
    await app.StopAsync();
}

return finalState == "succeeded" ? 0 : 1;

string? Arg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
