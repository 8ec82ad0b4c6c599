using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Http;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>
/// <c>GET /jobs/{id}/events</c> as server-sent events: every stored event after <c>Last-Event-ID</c>
/// (all on a first connect), then the live ones, ending after the terminal state event. The live feed is
/// subscribed before the replay is read, and sequence numbers already sent are skipped, so no event is
/// lost or repeated between the two. A finished job with nothing after <c>Last-Event-ID</c> answers 204.
/// </summary>
internal static class EventStream
{
    private static readonly TimeSpan KeepAlive = TimeSpan.FromSeconds(15);

    /// <param name="context">The request.</param>
    /// <param name="jobId">The job.</param>
    /// <param name="store">Stored events.</param>
    /// <param name="hub">Live events.</param>
    /// <param name="stopping">The host is stopping: the stream ends at once, so open streams never hold up the shutdown
    /// (and with it the checkpoint of the running job) until the shutdown timeout.</param>
    public static async Task WriteAsync(HttpContext context, string jobId, JobStore store, JobEventHub hub, CancellationToken stopping)
    {
        using var ended = CancellationTokenSource.CreateLinkedTokenSource(context.RequestAborted, stopping);
        var cancellationToken = ended.Token;
        long last = LastEventId(context.Request);
        using var live = hub.Subscribe(jobId);
        var replay = store.Events(jobId, last);
        if (replay.Count == 0 && store.Get(jobId) is { } job && job.State.IsTerminal())
        {
            // The terminal state and its event are committed together: read again in case it landed between
            // the two reads. Nothing after Last-Event-ID of a finished job: 204, which also tells an
            // EventSource to stop reconnecting (a stream left open here would never end).
            replay = store.Events(jobId, last);
            if (replay.Count == 0)
            {
                context.Response.StatusCode = StatusCodes.Status204NoContent;
                return;
            }
        }

        var response = context.Response;
        response.ContentType = "text/event-stream";
        response.Headers.CacheControl = "no-cache";
        response.Headers["X-Accel-Buffering"] = "no";
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);

        try
        {
            foreach (var e in replay)
            {
                await WriteEventAsync(response, e, cancellationToken).ConfigureAwait(false);
                last = e.Sequence;
                if (IsTerminal(e))
                {
                    return;
                }
            }

            var reader = live.Reader;
            while (true)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
                wait.CancelAfter(KeepAlive);
                bool ready;
                try
                {
                    ready = await reader.WaitToReadAsync(wait.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
                {
                    await response.WriteAsync(": keep-alive\n\n", cancellationToken).ConfigureAwait(false);
                    await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
                    continue;
                }

                if (!ready)
                {
                    return;
                }

                while (reader.TryRead(out var e))
                {
                    if (e.Sequence <= last)
                    {
                        if (IsTerminal(e))
                        {
                            // The client already had the end (a Last-Event-ID past it): nothing more will come.
                            return;
                        }

                        continue;
                    }

                    // The live feed keeps only the newest events of a client that reads slowly; what it dropped
                    // is in the store, sent from there in order.
                    IReadOnlyList<JobEvent> pending = e.Sequence == last + 1 ? [e] : store.Events(jobId, last);
                    foreach (var next in pending)
                    {
                        await WriteEventAsync(response, next, cancellationToken).ConfigureAwait(false);
                        last = next.Sequence;
                        if (IsTerminal(next))
                        {
                            return;
                        }
                    }
                }
            }
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // The client went away, or the host is stopping (the client reconnects with Last-Event-ID).
        }
    }

    /// <summary>True for a state event whose state is succeeded, failed or cancelled.</summary>
    public static bool IsTerminal(JobEvent e)
    {
        if (e.Type != JobEvent.StateType)
        {
            return false;
        }

        using var data = JsonDocument.Parse(e.Data);
        return data.RootElement.TryGetProperty("state", out var state) && state.ValueKind == JsonValueKind.String && JobStates.Parse(state.GetString()!).IsTerminal();
    }

    private static long LastEventId(HttpRequest request)
    {
        string? text = request.Headers["Last-Event-ID"].FirstOrDefault() ?? request.Query["lastEventId"].FirstOrDefault();
        return long.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out long id) ? id : 0;
    }

    private static async Task WriteEventAsync(HttpResponse response, JobEvent e, CancellationToken cancellationToken)
    {
        var text = new StringBuilder()
            .Append("id: ").Append(e.Sequence.ToString(CultureInfo.InvariantCulture)).Append('\n')
            .Append("event: ").Append(e.Type).Append('\n')
            .Append("data: ").Append(e.Data).Append("\n\n")
            .ToString();
        await response.WriteAsync(text, cancellationToken).ConfigureAwait(false);
        await response.Body.FlushAsync(cancellationToken).ConfigureAwait(false);
    }
}
