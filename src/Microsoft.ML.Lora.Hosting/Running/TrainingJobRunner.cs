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

    private readonly Dictionary<string, ActiveJob> active = new(StringComparer.Ordinal);
    private readonly Lock gate = new();
    private readonly SemaphoreSlim wake = new(0);

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
            lock (gate)
            {
                while (active.Count < max && store.NextRunnable(active.Keys) is string id)
                {
                    Start(id, stoppingToken);
                }
            }

            try
            {
                await wake.WaitAsync(stoppingToken).ConfigureAwait(false);
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
            store.TryTransition(id, [JobState.Running], JobState.Succeeded);
            logger.LogInformation("Job {JobId} succeeded", id);
        }
        catch (OperationCanceledException) when (userCancel.IsCancellationRequested)
        {
            store.TryTransition(id, [JobState.Running, JobState.Queued], JobState.Cancelled);
            logger.LogInformation("Job {JobId} cancelled", id);
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested)
        {
            logger.LogInformation("Job {JobId} interrupted by host shutdown; it resumes on the next start", id);
        }
        catch (Exception e)
        {
            logger.LogError(e, "Job {JobId} failed", id);
            store.TryTransition(id, [JobState.Running, JobState.Queued], JobState.Failed, e.Message);
        }
        finally
        {
            store.EndAttempt(id);
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

    private sealed class ActiveJob(CancellationTokenSource userCancel)
    {
        public CancellationTokenSource UserCancel { get; } = userCancel;

        public Task Task { get; set; } = Task.CompletedTask;
    }
}
