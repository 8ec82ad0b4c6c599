using System.Runtime.CompilerServices;
using System.Text;

namespace HostedService;

/// <summary>One server-sent event: its type (<c>event:</c>), data and id.</summary>
internal sealed record ServerSentEvent(string Event, string Data, string? Id);

/// <summary>Reads a <c>text/event-stream</c> response event by event (the WHATWG format, without retry).</summary>
internal static class ServerSentEvents
{
    public static async IAsyncEnumerable<ServerSentEvent> ReadAsync(HttpClient http, string path, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Accept.ParseAdd("text/event-stream");
        using HttpResponseMessage response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, cancellationToken);
        response.EnsureSuccessStatusCode();
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken), Encoding.UTF8);
        string type = "message";
        string? id = null;
        var data = new StringBuilder();
        while (await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.Length == 0)
            {
                if (data.Length > 0)
                {
                    yield return new ServerSentEvent(type, data.ToString(), id);
                }

                type = "message";
                data.Clear();
                continue;
            }

            if (line.StartsWith(':'))
            {
                continue; // comment / keep-alive
            }

            int colon = line.IndexOf(':');
            string field = colon < 0 ? line : line[..colon];
            string value = colon < 0 ? "" : line[(colon + 1)..].TrimStart(' ');
            switch (field)
            {
                case "event":
                    type = value;
                    break;
                case "data":
                    if (data.Length > 0)
                    {
                        data.Append('\n');
                    }

                    data.Append(value);
                    break;
                case "id":
                    id = value;
                    break;
            }
        }
    }
}
