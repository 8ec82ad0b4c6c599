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
using Microsoft.AspNetCore.Hosting;
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
string address = app.Addresses()[0];
Console.WriteLine($"service:   {address} (data in {dataDir})");
Console.WriteLine($"dashboard: {address}/?access_token={token}");

// Ctrl+C stops the host; a running job checkpoints and resumes on the next start over the same folder.
CancellationToken stopping = app.Lifetime.ApplicationStopping;
using var http = new HttpClient { BaseAddress = new Uri(address), Timeout = Timeout.InfiniteTimeSpan };
http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
int exitCode;
try
{
    exitCode = await JobClient.RunAsync(http, workspace, dataDir, stopping);
    if (wait)
    {
        Console.WriteLine("serving until Ctrl+C");
        await app.WaitForShutdownAsync();
    }
}
catch (OperationCanceledException) when (stopping.IsCancellationRequested)
{
    Console.WriteLine($"stopped; an unfinished job resumes when the service starts again on {dataDir}");
    exitCode = 130;
}

await app.StopAsync();
return exitCode;

string? Arg(string name)
{
    int i = Array.IndexOf(args, name);
    return i >= 0 && i + 1 < args.Length ? args[i + 1] : null;
}
