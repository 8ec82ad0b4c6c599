using System.Threading.Channels;
using Microsoft.ML.Lora.Hosting.Jobs;

namespace Microsoft.ML.Lora.Hosting.Running;

/// <summary>
/// Fans each job's new events out to the live event-stream clients of that job. The store publishes
/// after it has persisted an event, so a client that subscribes first and then replays the store misses
/// nothing (it skips the sequence numbers it already sent). Each client's feed holds at most
/// <see cref="Capacity"/> events: a client that reads slower than the job trains loses the oldest ones from
/// its feed (never from the store), sees the gap in the sequence numbers and reads them from the store, so
/// memory per client stays bounded however long it lags.
/// </summary>
internal sealed class JobEventHub
{
    /// <summary>Events kept per client feed.</summary>
    public const int Capacity = 256;

    private readonly Dictionary<string, List<Channel<JobEvent>>> subscribers = new(StringComparer.Ordinal);
    private readonly Lock gate = new();

    /// <summary>A live feed of <paramref name="jobId"/>'s events until disposed.</summary>
    public Subscription Subscribe(string jobId)
    {
        var channel = Channel.CreateBounded<JobEvent>(new BoundedChannelOptions(Capacity) { FullMode = BoundedChannelFullMode.DropOldest, SingleReader = true });
        lock (gate)
        {
            if (!subscribers.TryGetValue(jobId, out var list))
            {
                subscribers[jobId] = list = [];
            }

            list.Add(channel);
        }

        return new Subscription(this, jobId, channel);
    }

    /// <summary>Delivers <paramref name="jobEvent"/> to every subscriber of <paramref name="jobId"/>.</summary>
    public void Publish(string jobId, JobEvent jobEvent)
    {
        lock (gate)
        {
            if (subscribers.TryGetValue(jobId, out var list))
            {
                foreach (var channel in list)
                {
                    channel.Writer.TryWrite(jobEvent);
                }
            }
        }
    }

    private void Unsubscribe(string jobId, Channel<JobEvent> channel)
    {
        lock (gate)
        {
            if (subscribers.TryGetValue(jobId, out var list) && list.Remove(channel) && list.Count == 0)
            {
                subscribers.Remove(jobId);
            }
        }

        channel.Writer.TryComplete();
    }

    /// <summary>One client's feed.</summary>
    public sealed class Subscription(JobEventHub hub, string jobId, Channel<JobEvent> channel) : IDisposable
    {
        /// <summary>Events published since the subscription began.</summary>
        public ChannelReader<JobEvent> Reader => channel.Reader;

        /// <inheritdoc/>
        public void Dispose() => hub.Unsubscribe(jobId, channel);
    }
}
