using System.IO.Compression;
using System.Net.Http.Json;
using System.Text.Json;

namespace HostedService;

/// <summary>The client side of the example: submit a job, print its events, download its adapter.</summary>
internal static class JobClient
{
    /// <summary>Returns the process exit code: 0 when the job succeeded and its adapter was saved.</summary>
    public static async Task<int> RunAsync(HttpClient http, TinyWorkspace workspace, string dataDir, CancellationToken cancellationToken)
    {
        const int steps = 40;
        var request = new
        {
            model = workspace.Model,
            dataset = workspace.Dataset,
            output = $"adapter-{DateTime.UtcNow:yyyyMMdd-HHmmss-fff}",
            lora = new { rank = 4, alpha = 8 },
            training = new { maxSteps = steps, learningRate = 2e-2, batchSize = 8, seed = 1 },
        };
        using HttpResponseMessage submitted = await http.PostAsJsonAsync("jobs", request, cancellationToken);
        if (!submitted.IsSuccessStatusCode)
        {
            Console.Error.WriteLine($"POST /jobs answered {(int)submitted.StatusCode}: {await submitted.Content.ReadAsStringAsync(cancellationToken)}");
            return 1;
        }

        string id = (await submitted.Content.ReadFromJsonAsync<JsonElement>(cancellationToken)).GetProperty("id").GetString()!;
        Console.WriteLine($"job {id} submitted: {steps} steps of LoRA r={request.lora.rank} on {workspace.Model}");

        string state = await PrintEventsAsync(http, id, cancellationToken);
        if (state != "succeeded")
        {
            return 1;
        }

        string zip = Path.Combine(dataDir, $"{id}-adapter.zip");
        await using (Stream body = await http.GetStreamAsync($"jobs/{id}/adapter", cancellationToken))
        await using (FileStream file = File.Create(zip))
        {
            await body.CopyToAsync(file, cancellationToken);
        }

        using (ZipArchive archive = ZipFile.OpenRead(zip))
        {
            Console.WriteLine($"adapter:   {zip} ({new FileInfo(zip).Length} bytes: {string.Join(", ", archive.Entries.Select(e => e.FullName).Order())})");
        }

        return 0;
    }

    // Prints step and state events until the terminal state; returns it.
    private static async Task<string> PrintEventsAsync(HttpClient http, string id, CancellationToken cancellationToken)
    {
        await foreach (ServerSentEvent e in ServerSentEvents.ReadAsync(http, $"jobs/{id}/events", cancellationToken))
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
                string state = d.GetProperty("state").GetString()!;
                string error = d.TryGetProperty("error", out JsonElement err) && err.ValueKind == JsonValueKind.String ? $": {err.GetString()}" : "";
                Console.WriteLine($"job {id} {state}{error}");
                if (state is "succeeded" or "failed" or "cancelled")
                {
                    return state;
                }
            }
        }

        throw new InvalidOperationException($"the event stream of job {id} ended before a final state");
    }
}
