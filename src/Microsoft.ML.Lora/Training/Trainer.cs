using System.Diagnostics;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Trains whatever parameters of a <see cref="LlamaForCausalLM"/> are trainable (all of them for full
/// fine-tuning, or LoRA adapters) with AdamW, a warmup schedule, token-weighted gradient accumulation
/// and global-norm clipping. For a fixed seed (and thread count) a run is deterministic, and a run
/// resumed from a checkpoint continues bit for bit as if it had never stopped: the data order is a
/// function of (seed, epoch) and the dropout masks of (seed, micro-step), never of history.
/// </summary>
public sealed class Trainer : IDisposable
{
    private readonly LlamaForCausalLM model;
    private readonly Parameter[] trainable;
    private readonly AdamW optimizer;
    private readonly TrainerState state;
    private GrpoReward? reward;
    private Text.ITextTokenizer? rewardTokenizer;
    private GrpoGeneration? generation;

    /// <summary>Starts a run over the model's currently trainable parameters.</summary>
    /// <exception cref="ArgumentException">An option is invalid, or nothing is trainable.</exception>
    public Trainer(LlamaForCausalLM model, TrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        this.model = model;
        trainable = TrainableOf(model);
        optimizer = new AdamW(trainable, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        state = new TrainerState { Options = options, BaseDType = BaseDTypeOf(model), BaseConfig = BaseConfigOf(model) };
    }

    private Trainer(LlamaForCausalLM model, Parameter[] trainable, AdamW optimizer, TrainerState state)
    {
        this.model = model;
        this.trainable = trainable;
        this.optimizer = optimizer;
        this.state = state;
    }

    /// <summary>The run's options.</summary>
    public TrainingOptions Options => state.Options;

    /// <summary>Optimizer steps done so far (including those restored by <see cref="Resume"/>).</summary>
    public int GlobalStep => state.GlobalStep;

    /// <summary>The optimizer (its moments and step count).</summary>
    public AdamW Optimizer => optimizer;

    /// <summary>
    /// Restores a run from a checkpoint folder written by <c>Train</c>: the trainable parameters'
    /// values (the model's trainable set must have the same names and shapes), the optimizer's moments and
    /// step, and the position in the data. Call <c>Train</c> with the same rows to finish the run.
    /// </summary>
    /// <param name="model">The base model with the same trainable parameters, weights dtype and config as the checkpoint's run.</param>
    /// <param name="checkpointDirectory">A <c>checkpoint-N</c> folder.</param>
    /// <param name="options">
    /// The resumed run's options, or null to continue with the checkpoint's. Where its metrics and checkpoints
    /// go (<see cref="TrainingOptions.MetricsPath"/>, <see cref="TrainingOptions.CheckpointDirectory"/>), how long it
    /// runs (<see cref="TrainingOptions.Epochs"/>, <see cref="TrainingOptions.MaxSteps"/>; the learning-rate schedule
    /// stretches to the new length) and how often it evaluates and checkpoints may change; every other option
    /// must equal the checkpoint's (<see cref="Checkpoint.Options"/> gives them), or the run would not be the same.
    /// </param>
    /// <exception cref="InvalidDataException">The checkpoint is damaged or does not match the model.</exception>
    /// <exception cref="ArgumentException"><paramref name="options"/> changes an option that must stay; the message names each.</exception>
    public static Trainer Resume(LlamaForCausalLM model, string checkpointDirectory, TrainingOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrEmpty(checkpointDirectory);
        var state = Checkpoint.ReadState(checkpointDirectory);
        if (options is not null)
        {
            options.Validate();
            ResumeOptions.CheckUnchanged(state.Options, options, checkpointDirectory);
            state.Options = options;
        }

        var trainable = TrainableOf(model);
        var optimizer = Checkpoint.Restore(checkpointDirectory, trainable, state.Options);
        string? mismatch = optimizer.StepCount != state.GlobalStep
            ? $"optimizer step {optimizer.StepCount} differs from global_step {state.GlobalStep} in {Checkpoint.StateFileName}"
            : state.BaseDType is { } dtype && dtype != BaseDTypeOf(model)
                ? $"the run trained over {dtype} base weights; this model's are {BaseDTypeOf(model)} — load the base as the run did (quantization and dtype must match)"
                : state.BaseConfig is { } config && config != BaseConfigOf(model)
                    ? $"the run's base model had another config.json than the {model.Config.Architecture} loaded now — resume with the run's model"
                    : null;
        if (mismatch is not null)
        {
            optimizer.Dispose();
            throw new InvalidDataException($"{checkpointDirectory}: {mismatch}");
        }

        return new Trainer(model, trainable, optimizer, state) { generation = GrpoGeneration.Read(checkpointDirectory, model.Config.VocabSize) };
    }

    private static string BaseDTypeOf(LlamaForCausalLM model) =>
        model.Layers.Length == 0 ? "none" : model.Layers[0].SelfAttn.Projections().First().Weight.Value.DType.ToString().ToLowerInvariant();

    private static string BaseConfigOf(LlamaForCausalLM model) =>
        Fnv1a(System.Text.Encoding.UTF8.GetBytes(model.Config.ForCausalLM().ToJson())).ToString("x16", System.Globalization.CultureInfo.InvariantCulture);

    private static ulong Fnv1a(ReadOnlySpan<byte> bytes)
    {
        ulong h = 14695981039346656037;
        foreach (byte b in bytes)
        {
            h = (h ^ b) * 1099511628211;
        }

        return h;
    }

    /// <summary>
    /// Runs (or, after <see cref="Resume"/>, continues) training until the total step count of the options.
    /// </summary>
    /// <param name="trainRows">Training rows (truncated to MaxSequenceLength; each needs a token to predict).</param>
    /// <param name="validationRows">Validation rows; null to hold out ValidationFraction of the training rows (or none).</param>
    /// <param name="progress">Receives one report per optimizer step.</param>
    /// <param name="cancellationToken">Checked before every micro-batch; cancelling keeps the checkpoints already written.</param>
    /// <exception cref="TrainingDivergedException">A step's loss or gradient norm was not finite.</exception>
    public TrainingResult Train(IReadOnlyList<TokenRow> trainRows, IReadOnlyList<TokenRow>? validationRows = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        CheckTrainableUnchanged();
        return Run(TrainingData.Prepare(trainRows, validationRows, state.Options, model.Config.VocabSize, model.Config.NumLabels), progress, cancellationToken);
    }

    /// <summary>
    /// Trains on a streamed training set, for data larger than memory: <paramref name="openTrainRows"/> must
    /// yield the same rows each time it is called (it is read once to count, then once per epoch). Epochs
    /// are shuffled through a seeded buffer instead of a full permutation; checkpoints and resume work as
    /// with <see cref="Train(IReadOnlyList{TokenRow}, IReadOnlyList{TokenRow}?, IProgress{TrainingProgress}?, CancellationToken)"/>.
    /// </summary>
    public TrainingResult Train(Func<IEnumerable<TokenRow>> openTrainRows, IReadOnlyList<TokenRow>? validationRows = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        CheckTrainableUnchanged();
        return Run(TrainingData.PrepareStreaming(openTrainRows, validationRows, state.Options, model.Config.VocabSize, model.Config.NumLabels), progress, cancellationToken);
    }

    /// <summary>
    /// Trains with <see cref="TrainingOptions.Grpo"/>: <paramref name="prompts"/> are prompt rows (their
    /// <see cref="TokenRow.Fields"/> reach <paramref name="reward"/>), completions are sampled with the current adapter
    /// (seeded by the run's seed, the step, the prompt and the completion, so a resume samples the same), decoded with
    /// <paramref name="tokenizer"/> and scored by <paramref name="reward"/>. A run takes
    /// <see cref="GrpoOptions.Iterations"/> optimizer steps per batch of prompts (MaxSteps, when set, counts optimizer steps).
    /// </summary>
    /// <param name="prompts">Training prompts.</param>
    /// <param name="reward">Scores a completion.</param>
    /// <param name="tokenizer">Decodes completions for <paramref name="reward"/>; its EOS token ends them.</param>
    /// <param name="validationPrompts">
    /// Held-out prompts, or null to hold out <see cref="TrainingOptions.ValidationFraction"/> of <paramref name="prompts"/>
    /// (or none). At each evaluation every one gets a group of completions sampled with seeds that do not change
    /// during the run, and their mean reward is reported (<see cref="TrainingProgress.ValidationGrpo"/>).
    /// </param>
    /// <param name="progress">Receives one report per optimizer step.</param>
    /// <param name="cancellationToken">Checked before every completion sampled and every micro-batch.</param>
    public TrainingResult Train(IReadOnlyList<TokenRow> prompts, GrpoReward reward, Text.ITextTokenizer tokenizer, IReadOnlyList<TokenRow>? validationPrompts = null, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reward);
        ArgumentNullException.ThrowIfNull(tokenizer);
        if (state.Options.Grpo is null)
        {
            throw new InvalidOperationException("a reward function trains with GRPO: set TrainingOptions.Grpo");
        }

        if (tokenizer.EosTokenId is null)
        {
            throw new ArgumentException("the tokenizer has no EOS token to end sampled completions with", nameof(tokenizer));
        }

        CheckTrainableUnchanged();
        (this.reward, rewardTokenizer) = (reward, tokenizer);
        return Run(TrainingData.Prepare(prompts, validationPrompts, state.Options, model.Config.VocabSize, model.Config.NumLabels), progress, cancellationToken);
    }

    private TrainingResult Run(TrainingData data, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        if (state.Options.Grpo is not null && reward is null)
        {
            throw new InvalidOperationException("TrainingOptions.Grpo trains on sampled completions: call Train(prompts, reward, tokenizer)");
        }

        var options = state.Options;
        int iterations = options.Grpo?.Iterations ?? 1;
        int totalSteps = RunLength(data, options);
        CheckSameData(data, totalSteps);
        state.TotalSteps = totalSteps;
        state.StepsPerEpoch = data.StepsPerEpoch;
        state.TrainRows = data.TrainCount;
        state.ValidationRows = data.Validation.Count;
        state.DataFingerprint = data.Fingerprint;

        int warmup = Math.Min(options.WarmupSteps ?? (int)Math.Ceiling(options.WarmupRatio * totalSteps), totalSteps);
        var schedule = new LearningRateSchedule(options.Schedule, options.LearningRate, warmup, totalSteps);
        if (options.CheckpointEverySteps > 0)
        {
            // Fail before the first step rather than after hours of training.
            ProbeWritable(options.CheckpointDirectory!);
        }

        using var metrics = options.MetricsPath is null ? null : MetricsLog.Open(options.MetricsPath);
        var losses = new List<double>();
        string? lastCheckpoint = null;
        while (state.GlobalStep < totalSteps)
        {
            int step = state.GlobalStep;
            var clock = Stopwatch.StartNew();

            // GRPO's Iterations steps of one generation share its prompts (and samples).
            var micro = data.MicroBatches(step / iterations, out int epoch, out int firstMicro);
            long firstMicroStep = ((long)epoch * data.MicroBatchesPerEpoch) + firstMicro;
            double lr = schedule.At(step);
            PreferenceResult? pairs = null;
            GrpoStepStats? rl = null;
            LossResult loss;
            if (options.Grpo is { } grpo)
            {
                var (result, stats) = GrpoStep(micro.Select(static m => m.Rows).ToList(), grpo, step, firstMicroStep, cancellationToken);
                rl = stats;
                loss = new LossResult(result.Loss, 1);
            }
            else if (options.Preference is { } preference)
            {
                pairs = PreferenceStep(micro.Select(static m => m.Rows).ToList(), preference, firstMicroStep, cancellationToken);
                loss = new LossResult(pairs.Value.LossSum, pairs.Value.Pairs);
            }
            else
            {
                loss = Gradients.Accumulate(model, trainable, micro.Select(m => m.Batch).ToList(), i => TrainingRandom.DropoutSeed(options.Seed, firstMicroStep + i), cancellationToken);
            }

            double gradNorm = Gradients.ClipGlobalNorm(trainable, options.MaxGradNorm);
            if (!double.IsFinite(loss.Mean) || !double.IsFinite(gradNorm))
            {
                throw new TrainingDivergedException(step + 1, micro.SelectMany(m => m.Rows).Select(r => r.Line).ToList(), loss.Mean, gradNorm, lr);
            }

            optimizer.Step(lr);
            state.GlobalStep = step + 1;
            state.NextMicroStep = firstMicroStep + micro.Count;
            state.Epoch = state.GlobalStep / iterations / data.StepsPerEpoch;
            state.EpochPosition = data.EpochPosition(state.GlobalStep / iterations);
            state.LastLoss = loss.Mean;
            losses.Add(loss.Mean);
            double seconds = clock.Elapsed.TotalSeconds;
            double epochs = (double)state.GlobalStep / ((long)data.StepsPerEpoch * iterations);
            long tokens = rl is { } sampled ? (long)Math.Round(sampled.CompletionLength * sampled.Completions) : pairs is null ? loss.Tokens : micro.Sum(static m => m.Batch.CountTargets());
            var report = new TrainingProgress(state.GlobalStep, totalSteps, epochs, loss.Mean, lr, gradNorm, tokens, seconds > 0 ? tokens / seconds : 0, null, pairs, null, rl);
            metrics?.Step(report);

            if (data.Validation.Count > 0 && EvaluationDue(data, totalSteps, iterations))
            {
                if (options.Grpo is { } evalGrpo)
                {
                    var eval = EvaluateGrpo(data.Validation, evalGrpo, cancellationToken);
                    metrics?.GrpoEvaluation(state.GlobalStep, epochs, eval);
                    report = report with { ValidationGrpo = eval };
                }
                else if (options.Preference is { } evalPreference)
                {
                    var eval = DirectPreference.Evaluate(model, data.Validation.Select(DirectPreference.PairOf).ToList(), evalPreference, options.BatchSize);
                    RecordValidation(eval.Loss);
                    metrics?.PreferenceEvaluation(state.GlobalStep, epochs, eval);
                    report = report with { ValidationLoss = eval.Loss, ValidationPreference = eval };
                }
                else
                {
                    var eval = Evaluator.Evaluate(model, data.Validation, options.BatchSize, cancellationToken: cancellationToken, maxRowTokens: options.MaxSequenceLength);
                    RecordValidation(eval.Mean);
                    metrics?.Evaluation(state.GlobalStep, epochs, eval.Mean, eval.Tokens);
                    report = report with { ValidationLoss = eval.Mean };
                }
            }

            bool last = state.GlobalStep == totalSteps;
            if (options.CheckpointEverySteps > 0 && (state.GlobalStep % options.CheckpointEverySteps == 0 || last))
            {
                lastCheckpoint = Checkpoint.Write(options.CheckpointDirectory!, state, optimizer, cancellationToken, AdapterConfigJson(), PendingGeneration());
            }

            // Reported once the step is complete, checkpoint included.
            progress?.Report(report);
        }

        return new TrainingResult(state.GlobalStep, losses, state.LastValidationLoss, state.BestValidationLoss, data.TruncatedRows, lastCheckpoint);
    }

    // One optimizer step of GRPO: iteration (step mod Iterations) of the generation step / Iterations. Its first iteration
    // samples, per micro-batch of prompts, a group of completions each with the adapter as it is, scores them and takes
    // their log-probabilities as π_old; every iteration adds the gradient of the objective (micro-batches averaged).
    private (GrpoResult Result, GrpoStepStats Stats) GrpoStep(IReadOnlyList<TokenRow[]> microBatches, GrpoOptions grpo, int step, long firstMicroStep, CancellationToken cancellationToken)
    {
        foreach (var p in trainable)
        {
            p.ZeroGrad();
        }

        int index = step / grpo.Iterations, iteration = step % grpo.Iterations;
        if (generation?.Index != index)
        {
            generation = Generate(microBatches, grpo, index, cancellationToken);
        }

        if (generation.MicroBatches.Count != microBatches.Count)
        {
            throw new InvalidDataException($"the checkpoint's GRPO samples of step {step} hold {generation.MicroBatches.Count} micro-batches; the run's options give {microBatches.Count}");
        }

        double lossSum = 0, klSum = 0;
        long tokens = 0, clipped = 0;
        for (int i = 0; i < microBatches.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            model.DropoutSeed = TrainingRandom.DropoutSeed(state.Options.Seed, ((firstMicroStep + i) * grpo.Iterations) + iteration);
            var result = GroupRelativePolicy.ForwardBackward(model, generation.MicroBatches[i], grpo, 1.0 / microBatches.Count);
            lossSum += result.Loss;
            tokens += result.Tokens;
            clipped += result.ClippedTokens;
            klSum += result.KlSum;
        }

        var total = new GrpoResult(lossSum / microBatches.Count, tokens, clipped, klSum);
        return (total, Statistics(generation.MicroBatches.SelectMany(static m => m).ToList(), generation.Rewards.SelectMany(static r => r).ToArray(), grpo.GroupSize) with { ClipRatio = total.ClipRatio, Kl = total.MeanKl });
    }

    // Samples, scores and takes π_old of generation `index`: a group per prompt, advantages within each group.
    private GrpoGeneration Generate(IReadOnlyList<TokenRow[]> microBatches, GrpoOptions grpo, int index, CancellationToken cancellationToken)
    {
        var samples = new List<GrpoSample[]>(microBatches.Count);
        var rewards = new List<double[]>(microBatches.Count);
        int first = 0;
        foreach (var rows in microBatches)
        {
            int offset = first;
            var (drafts, scores) = SampleGroups(rows, grpo, (prompt, completion) => TrainingRandom.SampleSeed(state.Options.Seed, index, offset + prompt, completion), cancellationToken);
            double[] advantages = GroupRelativePolicy.Advantages(scores, grpo.GroupSize, grpo.ScaleRewards);
            var old = GroupRelativePolicy.LogProbs(model, drafts);
            samples.Add(drafts.Select((d, k) => d with { OldLogProbs = old[k].Select(static v => (float)v).ToArray(), Advantage = advantages[k] }).ToArray());
            rewards.Add(scores);
            first += rows.Length;
        }

        return new GrpoGeneration(index, samples, rewards);
    }

    // GroupSize completions of each row sampled with the adapter as it is (seeded by prompt and completion number) and scored.
    private (List<GrpoSample> Drafts, double[] Rewards) SampleGroups(IReadOnlyList<TokenRow> rows, GrpoOptions grpo, Func<int, int, int> seedOf, CancellationToken cancellationToken)
    {
        int eos = rewardTokenizer!.EosTokenId!.Value;
        var drafts = new List<GrpoSample>(rows.Count * grpo.GroupSize);
        var rewards = new double[rows.Count * grpo.GroupSize];
        for (int p = 0; p < rows.Count; p++)
        {
            var row = rows[p];
            string promptText = rewardTokenizer.Decode(row.InputIds, skipSpecialTokens: true);
            for (int g = 0; g < grpo.GroupSize; g++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var sampling = new GenerationOptions { MaxNewTokens = grpo.MaxCompletionLength, Temperature = grpo.Temperature, Seed = seedOf(p, g), StopTokenIds = [eos] };
                int[] completion = Generator.Generate(model, row.InputIds, sampling, cancellationToken).ToArray();
                rewards[drafts.Count] = reward!(promptText, rewardTokenizer.Decode(completion, skipSpecialTokens: true), row);
                drafts.Add(new GrpoSample(row.InputIds, completion, new float[completion.Length], 0));
            }
        }

        return (drafts, rewards);
    }

    // Held-out prompts: a group each, sampled with seeds fixed for the run, so evaluations differ only by the adapter.
    private GrpoStepStats EvaluateGrpo(IReadOnlyList<TokenRow> prompts, GrpoOptions grpo, CancellationToken cancellationToken)
    {
        var (drafts, rewards) = SampleGroups(prompts, grpo, (prompt, completion) => TrainingRandom.EvaluationSampleSeed(state.Options.Seed, prompt, completion), cancellationToken);
        return Statistics(drafts, rewards, grpo.GroupSize);
    }

    private static GrpoStepStats Statistics(IReadOnlyList<GrpoSample> samples, double[] rewards, int groupSize)
    {
        double stdSum = 0;
        for (int g = 0; g < rewards.Length; g += groupSize)
        {
            stdSum += GroupRelativePolicy.MeanAndStd(rewards.AsSpan(g, groupSize)).Std;
        }

        return new GrpoStepStats(samples.Count, rewards.Average(), stdSum / (rewards.Length / groupSize), samples.Average(static s => s.Completion.Length), 0, 0);
    }

    // One optimizer step of preference pairs: every micro-batch's pairs add d(Σ loss / all pairs of the step)/dp.
    private PreferenceResult PreferenceStep(IReadOnlyList<TokenRow[]> microBatches, PreferenceOptions preference, long firstMicroStep, CancellationToken cancellationToken)
    {
        foreach (var p in trainable)
        {
            p.ZeroGrad();
        }

        int total = microBatches.Sum(static m => m.Length);
        PreferenceResult sum = default;
        for (int i = 0; i < microBatches.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            model.DropoutSeed = TrainingRandom.DropoutSeed(state.Options.Seed, firstMicroStep + i);
            sum += DirectPreference.ForwardBackward(model, microBatches[i].Select(DirectPreference.PairOf).ToList(), preference, 1.0 / total);
        }

        return sum;
    }

    /// <summary>Writes <c>checkpoint-&lt;step&gt;</c> of the current state into <paramref name="directory"/> (after at least one <c>Train</c> call set up the data).</summary>
    public string SaveCheckpoint(string directory, CancellationToken cancellationToken = default)
    {
        ArgumentException.ThrowIfNullOrEmpty(directory);
        if (state.TotalSteps == 0)
        {
            throw new InvalidOperationException("nothing to checkpoint yet: call Train first, so the checkpoint records the data it belongs to");
        }

        return Checkpoint.Write(directory, state, optimizer, cancellationToken, AdapterConfigJson(), PendingGeneration());
    }

    // The active adapter's config in PEFT's form (rank, α, targets…), so a resume can rebuild the same adapter.
    private byte[]? AdapterConfigJson()
    {
        var linears = model.Linears().ToList();
        var adapters = linears.Where(static l => l.ActiveAdapter is not null).Select(static l => l.Adapters[l.ActiveAdapter!]).ToList();
        return adapters.Count == 0 ? null : PeftAdapterWriter.Describe(model, linears, adapters, null, null).ToJson();
    }

    /// <inheritdoc/>
    public void Dispose() => optimizer.Dispose();

    private static Parameter[] TrainableOf(LlamaForCausalLM model)
    {
        var list = model.TrainableParameters().ToArray();
        if (list.Length == 0)
        {
            throw new ArgumentException("the model has no trainable parameters: call SetTrainable(true) for full fine-tuning, mark selected parameters Trainable, or attach LoRA adapters", nameof(model));
        }

        return list;
    }

    private static void ProbeWritable(string directory)
    {
        string full = Path.GetFullPath(directory);
        string probe = Path.Combine(full, $".write-probe.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(full);
            File.WriteAllBytes(probe, []);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"checkpoint folder '{full}' is not writable ({e.Message}); set TrainingOptions.CheckpointDirectory to a writable folder", e);
        }
    }

    private bool EvaluationDue(TrainingData data, int totalSteps, int iterations)
    {
        long every = state.Options.EvalEverySteps > 0 ? state.Options.EvalEverySteps : (long)data.StepsPerEpoch * iterations;
        return state.GlobalStep % every == 0 || state.GlobalStep == totalSteps;
    }

    // Optimizer steps of the run: the data's, times GRPO's iterations per batch of prompts unless MaxSteps counts them.
    private static int RunLength(TrainingData data, TrainingOptions options)
    {
        int iterations = options.Grpo?.Iterations ?? 1;
        long total = options.MaxSteps is null ? (long)data.TotalSteps * iterations : data.TotalSteps;
        return total <= int.MaxValue
            ? (int)total
            : throw new ArgumentException($"TrainingOptions.Epochs = {options.Epochs} with Grpo.Iterations = {iterations} gives {total} optimizer steps, more than 2^31 − 1; set MaxSteps or fewer epochs", nameof(options));
    }

    // The samples of the current generation when the next step still uses them (GRPO between a generation's steps).
    private GrpoGeneration? PendingGeneration() =>
        state.Options.Grpo is { } grpo && generation is not null && state.GlobalStep % grpo.Iterations != 0 && generation.Index == state.GlobalStep / grpo.Iterations
            ? generation
            : null;

    private void RecordValidation(double loss)
    {
        state.LastValidationLoss = loss;
        if (state.BestValidationLoss is not double best || loss < best)
        {
            state.BestValidationLoss = loss;
            state.BestValidationStep = state.GlobalStep;
        }
    }

    private void CheckTrainableUnchanged()
    {
        var now = model.TrainableParameters().ToArray();
        if (now.Length != trainable.Length || now.Where((p, i) => !ReferenceEquals(p, trainable[i])).Any())
        {
            throw new InvalidOperationException($"the model's trainable parameters changed after the trainer was created ({trainable.Length} then, {now.Length} now); create a new Trainer");
        }
    }

    private void CheckSameData(TrainingData data, int totalSteps)
    {
        // A first Train call of a new trainer has nothing to compare with; a resumed trainer, or a
        // second call after a cancellation, must continue on the same rows.
        if (state.TotalSteps == 0)
        {
            return;
        }

        if (state.DataFingerprint != data.Fingerprint || state.TrainRows != data.TrainCount || state.ValidationRows != data.Validation.Count)
        {
            throw new InvalidOperationException($"the rows passed to Train differ from those of the run being continued ({state.TrainRows} training rows, fingerprint {state.DataFingerprint:x16}; now {data.TrainCount} rows, fingerprint {data.Fingerprint:x16}, validation {data.Validation.Count} vs {state.ValidationRows}); resume with the same data to continue the run exactly");
        }

        if (totalSteps < state.GlobalStep)
        {
            throw new InvalidOperationException($"the run already took {state.GlobalStep} steps, more than the {totalSteps} its options now give (Epochs {state.Options.Epochs}, MaxSteps {state.Options.MaxSteps?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"})");
        }
    }
}
