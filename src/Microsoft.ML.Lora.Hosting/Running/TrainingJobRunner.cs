using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Running;

/// <summary>
/// The background service that trains queued jobs, at most <see cref="LoraTrainingOptions.MaxConcurrentJobs"/>
/// at a time. On start it first resumes the jobs a previous process left running (from their latest
/// checkpoint), then takes queued jobs in submission order. On stop it cancels the running jobs, which
/// checkpoint their last completed step and stay <c>running</c> in the store for the next start.
/// </summary>
internal sealed class TrainingJobRunner(JobStore store, TrainingJobExecutor executor, IOptions<LoraTrainingOptions> options, ILogger<TrainingJobRunner> logger) : BackgroundService
{
    // Runs of a job the process died in (kill, crash) before it is failed rather than resumed again.
    private const int MaxCrashes = 3;

    // Backoff of store retries: from 1 s, doubling, at most a minute.
    private static readonly TimeSpan FirstRetry = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan LastRetry = TimeSpan.FromMinutes(1);

    private readonly Dictionary<string, ActiveJob> active = new(StringComparer.Ordinal);

    // Jobs whose end could not be stored (the store failed: a full disk, I/O errors): they are not run again;
    // their end is stored once the store accepts writes, retried with backoff.
    private readonly Dictionary<string, PendingEnd> unrecorded = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private readonly SemaphoreSlim wake = new(0);
    private TimeSpan storeRetry = FirstRetry;
    private DateTime storeRetryAt = DateTime.MinValue;

    /// <summary>Why the job store cannot be written right now, or null when its last write worked.</summary>
    public string? StoreTrouble { get; private set; }

    /// <summary>Jobs finished whose end waits for the store to accept writes.</summary>
    public int UnrecordedEnds
    {
        get
        {
            lock (gate)
            {
                return unrecorded.Count;
            }
        }
    }

    /// <summary>Runs started since the service started (tests: a store failure must not restart jobs in a loop).</summary>
    internal int Starts { get; private set; }

    /// <summary>Jobs training right now.</summary>
    public IReadOnlyCollection<string> ActiveJobs
    {
        get
        {
            lock (gate)
            {
                return active.Keys.ToArray();
            }
        }
    }

    /// <summary>Wakes the loop: a job was queued.</summary>
    public void Notify() => wake.Release();

    /// <summary>
    /// Cancels the job: a queued one (or one left running by a previous process and not yet resumed)
    /// becomes <c>cancelled</c> at once, a training one stops at its next micro-batch. False when the job has already finished.
    /// </summary>
    public bool Cancel(string jobId)
    {
        lock (gate)
        {
            if (active.TryGetValue(jobId, out var job))
            {
                job.UserCancel.Cancel();
                return true;
            }

            return store.TryTransition(jobId, [JobState.Queued, JobState.Running], JobState.Cancelled);
        }
    }

    /// <inheritdoc/>
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        int max = options.Value.MaxConcurrentJobs;
        logger.LogInformation("Training runner started: up to {Max} job(s) at a time", max);
        while (!stoppingToken.IsCancellationRequested)
        {
            TimeSpan? wait = null;
            lock (gate)
            {
                RecordPendingEnds();
                if (StoreTrouble is not null && unrecorded.Count == 0 && DateTime.UtcNow >= storeRetryAt)
                {
                    // Nothing waits to be recorded: try the store again by starting work (a failure backs off further).
                    StoreTrouble = null;
                }

                if (StoreTrouble is null)
                {
                    try
                    {
                        while (active.Count < max && store.NextRunnable([.. active.Keys, .. unrecorded.Keys]) is string id)
                        {
                            Start(id, stoppingToken);
                        }
                    }
                    catch (Exception e) when (e is not OperationCanceledException)
                    {
                        StoreFailed(e);
                    }
                }

                if (unrecorded.Count > 0 || StoreTrouble is not null)
                {
                    wait = storeRetryAt - DateTime.UtcNow;
                }
            }

            try
            {
                if (wait is { } delay)
                {
                    await wake.WaitAsync(delay > TimeSpan.Zero ? delay : TimeSpan.FromMilliseconds(10), stoppingToken).ConfigureAwait(false);
                }
                else
                {
                    await wake.WaitAsync(stoppingToken).ConfigureAwait(false);
                }
            }
            catch (OperationCanceledException)
            {
                break;
            }
        }

        Task[] running;
        lock (gate)
        {
            running = active.Values.Select(a => a.Task).ToArray();
        }

        logger.LogInformation("Training runner stopping: waiting for {Count} job(s) to checkpoint", running.Length);
        await Task.WhenAll(running).ConfigureAwait(false);
    }

    /// <inheritdoc/>
    public override void Dispose()
    {
        wake.Dispose();
        base.Dispose();
    }

    private void Start(string id, CancellationToken stoppingToken)
    {
        Starts++;
        var userCancel = new CancellationTokenSource();
        var job = new ActiveJob(userCancel);
        active[id] = job;
        job.Task = Task.Factory.StartNew(() => RunOne(id, userCancel.Token, stoppingToken), CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private void RunOne(string id, CancellationToken userCancel, CancellationToken shutdown)
    {
        try
        {
            // Starts that never ended mean the process died while the job ran: after MaxCrashes of them the job
            // is failed instead of resumed again (a hostile model would otherwise crash every restart).
            int attempt = store.BeginAttempt(id);
            if (attempt > MaxCrashes)
            {
                string reason = $"the service stopped {attempt - 1} times while this job ran (a crash or a kill each time); it is not started again — resubmit it once the cause is fixed";
                logger.LogError("Job {JobId} failed: {Reason}", id, reason);
                store.TryTransition(id, [JobState.Running, JobState.Queued], JobState.Failed, reason);
                return;
            }

            if (!store.TryTransition(id, [JobState.Queued, JobState.Running], JobState.Running))
            {
                return;
            }

            logger.LogInformation("Job {JobId} started", id);
            executor.Run(id, userCancel, shutdown);
            End(id, JobState.Succeeded, null);
            logger.LogInformation("Job {JobId} succeeded", id);
        }
        catch (OperationCanceledException) when (userCancel.IsCancellationRequested)
        {
            End(id, JobState.Cancelled, null);
            logger.LogInformation("Job {JobId} cancelled", id);
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            logger.LogInformation("Job {JobId} interrupted by host shutdown; it resumes on the next start", id);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Job {JobId} failed", id);
            End(id, JobState.Failed, e.Message);
        }
        finally
        {
            try
            {
                store.EndAttempt(id);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                lock (gate)
                {
                    StoreFailed(e);
                }
            }

            lock (gate)
            {
                active[id].UserCancel.Dispose();
                active.Remove(id);
            }

            if (!shutdown.IsCancellationRequested)
            {
                Notify();
            }
        }
    }

    // Stores the job's end; when the store refuses, the end waits in `unrecorded` (the job is not run again).
    private void End(string id, JobState state, string? error)
    {
        try
        {
            store.TryTransition(id, [JobState.Running, JobState.Queued], state, error);
            lock (gate)
            {
                StoreWorked();
            }
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            lock (gate)
            {
                unrecorded[id] = new PendingEnd(state, error ?? e.Message);
                StoreFailed(e);
            }
        }
    }

    // Callers hold the lock.
    private void RecordPendingEnds()
    {
        if (unrecorded.Count == 0 || DateTime.UtcNow < storeRetryAt)
        {
            return;
        }

        foreach (var (id, end) in unrecorded.ToArray())
        {
            try
            {
                store.TryTransition(id, [JobState.Running, JobState.Queued], end.State, end.Error);
                unrecorded.Remove(id);
                logger.LogInformation("Job {JobId}: its end ({State}) is stored now that the job store accepts writes", id, end.State);
                StoreWorked();
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                StoreFailed(e);
                return;
            }
        }
    }

    // Callers hold the lock. One log line per backoff period, not per attempt.
    private void StoreFailed(Exception e)
    {
        bool first = StoreTrouble is null;
        StoreTrouble = e.Message;
        storeRetryAt = DateTime.UtcNow + storeRetry;
        logger.LogError(first ? e : null, "Job store write failed ({Reason}); retrying in {Delay}", e.Message, storeRetry);
        storeRetry = storeRetry * 2 < LastRetry ? storeRetry * 2 : LastRetry;
    }

    // Callers hold the lock.
    private void StoreWorked()
    {
        if (StoreTrouble is not null)
        {
            logger.LogInformation("Job store accepts writes again");
        }

        StoreTrouble = null;
        storeRetry = FirstRetry;
        storeRetryAt = DateTime.MinValue;
    }

    private sealed record PendingEnd(JobState State, string Error);

    private sealed class ActiveJob(CancellationTokenSource userCancel)
    {
        public CancellationTokenSource UserCancel { get; } = userCancel;

        public Task Task { get; set; } = Task.CompletedTask;
    }
}
