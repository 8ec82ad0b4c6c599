using System.Text.Json;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>One server-sent event as received.</summary>
internal sealed record SseEvent(long Id, string Type, JsonElement Data)
{
    public string? State => Type == "state" ? Data.GetProperty("state").GetString() : null;

    public int Step => Data.GetProperty("step").GetInt32();
}

/// <summary>Reads GET /jobs/{id}/events to its end (the server closes it after the terminal state).</summary>
internal static class SseClient
{
    /// <param name="client">Client of the service.</param>
    /// <param name="path">The events route.</param>
    /// <param name="cancellationToken">Ends the wait.</param>
    /// <param name="lastEventId">Sent as <c>Last-Event-ID</c>.</param>
    /// <param name="received">Called with each event as it arrives.</param>
    public static async Task<List<SseEvent>> ReadAllAsync(HttpClient client, string path, CancellationToken cancellationToken, long? lastEventId = null, Action<SseEvent>? received = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        if (lastEventId is long last)
        {
            request.Headers.Add("Last-Event-ID", last.ToString(System.Globalization.CultureInfo.InvariantCulture));
        }

        using var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        var events = new List<SseEvent>();
        long id = 0;
        string? type = null, data = null;
        while (await reader.ReadLineAsync(cancellationToken) is string line)
        {
            if (line.Length == 0)
            {
                if (type is not null && data is not null)
                {
                    using var doc = JsonDocument.Parse(data);
                    events.Add(new SseEvent(id, type, doc.RootElement.Clone()));
                    received?.Invoke(events[^1]);
                }

                type = data = null;
            }
            else if (line.StartsWith("id: ", StringComparison.Ordinal))
            {
                id = long.Parse(line[4..], System.Globalization.CultureInfo.InvariantCulture);
            }
            else if (line.StartsWith("event: ", StringComparison.Ordinal))
            {
                type = line[7..];
            }
            else if (line.StartsWith("data: ", StringComparison.Ordinal))
            {
                data = line[6..];
            }
        }

        return events;
    }
}
