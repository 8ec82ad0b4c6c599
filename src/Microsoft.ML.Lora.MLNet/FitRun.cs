using System.Globalization;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// One Fit of a LoRA trainer: its seed and log channel from the MLContext, its cancellation (the options'
/// token, or ML.NET's cancellation of the context), its device, and the progress of the training run,
/// which it writes to the log (steps at Trace level; epochs, validation losses and the device choice at
/// Info or Warning level, as ML.NET's trainers report theirs), records for the transformer's metrics and
/// passes on to the options' <see cref="IProgress{T}"/>.
/// </summary>
internal sealed class FitRun : IDisposable
{
    private readonly LoraTrainerOptions options;
    private readonly string name;
    private readonly CancellationTokenSource cancellation;
    private readonly List<double> stepLosses = [];
    private readonly List<LoraValidationLoss> validationLosses = [];
    private int passes;
    private double lastEpoch;

    public FitRun(IHostEnvironment environment, string name, LoraTrainerOptions options)
    {
        this.options = options;
        this.name = name;
        Host = new MLNetHost(environment, name);
        Seed = Host.NextSeed();
        cancellation = CancellationTokenSource.CreateLinkedTokenSource(options.CancellationToken);
    }

    public MLNetHost Host { get; }

    /// <summary>The run's seed (adapter initialisation, data order, dropout, a new head).</summary>
    public int Seed { get; }

    /// <summary>Cancelled by the options' token, or at the next check after ML.NET cancelled the context.</summary>
    public CancellationToken Token => cancellation.Token;

    /// <summary>Rows of the first pass over the training data (the engine's counting pass).</summary>
    public int TrainingRows { get; private set; }

    /// <summary>Training rows cut to MaxSequenceLength in the first pass.</summary>
    public int TruncatedRows { get; private set; }

    /// <summary>The device the model runs on.</summary>
    public Backend? Backend { get; private set; }

    /// <summary>Throws <see cref="OperationCanceledException"/> once cancelled.</summary>
    public void CheckCanceled()
    {
        if (Host.IsCanceled)
        {
            cancellation.Cancel();
        }

        cancellation.Token.ThrowIfCancellationRequested();
    }

    /// <summary>The backend of Options.Device (logged).</summary>
    public Backend ResolveBackend()
    {
        Backend = DeviceChoice.Resolve(options.Device, options.FallbackToCpu, Host, $"{name}.Options.Device");
        Host.Channel.Info($"{name}: model '{options.ModelPath}' on {Backend}, seed {Seed}");
        return Backend;
    }

    /// <summary>
    /// <paramref name="open"/> as the engine reads it (once to count, then once per epoch), counting the rows
    /// and the truncated rows of the first pass. <paramref name="open"/> gets a flag to report a truncation with.
    /// </summary>
    public Func<IEnumerable<T>> Passes<T>(Func<Action, IEnumerable<T>> open) => () => Pass(open);

    /// <summary>What the engine reports after every step: logged, recorded, checked for cancellation, passed on.</summary>
    public IProgress<TrainingProgress> Progress => new Reporter(this);

    /// <summary>The metrics of the finished run.</summary>
    public LoraTrainingMetrics Metrics(TrainingResult result) => new(
        TrainingRows,
        TruncatedRows,
        result.GlobalStep,
        stepLosses.Count > 0 ? lastEpoch : 0,
        [.. result.StepLosses],
        [.. validationLosses],
        Backend?.ToString() ?? "");

    /// <inheritdoc/>
    public void Dispose()
    {
        cancellation.Dispose();
        Host.Dispose();
    }

    private IEnumerable<T> Pass<T>(Func<Action, IEnumerable<T>> open)
    {
        bool first = passes++ == 0;
        int rows = 0, truncated = 0;
        foreach (var row in open(() => truncated++))
        {
            rows++;
            yield return row;
        }

        if (first)
        {
            (TrainingRows, TruncatedRows) = (rows, truncated);
            if (truncated > 0)
            {
                Host.Channel.Warning($"{name}: {truncated} of {rows} training rows are longer than MaxSequenceLength = {options.MaxSequenceLength} tokens and were cut");
            }
        }
    }

    private void Report(TrainingProgress p)
    {
        var inv = CultureInfo.InvariantCulture;
        var channel = Host.Channel;
        if (p.Step == 1)
        {
            channel.Info(string.Create(inv, $"{name}: {TrainingRows} rows, {p.TotalSteps} steps, batch size {options.BatchSize}, learning rate {options.LearningRate:G3}, LoRA r = {options.Rank}, α = {options.Alpha:G3}"));
        }

        stepLosses.Add(p.Loss);
        lastEpoch = p.Epoch;
        channel.Trace(string.Create(inv, $"step {p.Step}/{p.TotalSteps}, epoch {p.Epoch:F2}: loss {p.Loss:F4}, learning rate {p.LearningRate:G3}, gradient norm {p.GradNorm:F3}"));
        bool epochEnd = Math.Abs(p.Epoch - Math.Round(p.Epoch)) < 1e-9 || p.Step == p.TotalSteps;
        if (epochEnd)
        {
            double mean = stepLosses.TakeLast(EpochSteps(p)).Average();
            channel.Info(string.Create(inv, $"epoch {p.Epoch:F2} (step {p.Step}/{p.TotalSteps}): training loss {mean:F4}"));
        }

        if (p.ValidationLoss is double loss)
        {
            validationLosses.Add(new LoraValidationLoss(p.Step, p.Epoch, loss));
            channel.Info(string.Create(inv, $"epoch {p.Epoch:F2} (step {p.Step}/{p.TotalSteps}): validation loss {loss:F4}"));
        }

        options.Progress?.Report(p);
        if (Host.IsCanceled)
        {
            // The engine checks the token before its next micro-batch.
            cancellation.Cancel();
        }
    }

    // Steps of the epoch that ends at p (the last epoch may be shorter).
    private static int EpochSteps(TrainingProgress p)
    {
        int perEpoch = p.Epoch > 0 ? Math.Max(1, (int)Math.Round(p.Step / p.Epoch)) : p.Step;
        int rest = p.Step % perEpoch;
        return rest == 0 ? perEpoch : rest;
    }

    private sealed class Reporter(FitRun run) : IProgress<TrainingProgress>
    {
        public void Report(TrainingProgress value) => run.Report(value);
    }
}
