using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// <c>lora train</c>: LoRA (default), QLoRA (<c>--quantize nf4</c>) or full fine-tuning (<c>--full</c>) on
/// tokenized JSONL. <c>--out</c> receives <c>metrics.jsonl</c>, <c>checkpoints/</c> when asked, and at the
/// end the PEFT adapter (or, with <c>--full</c>, the whole model in <c>--out/model</c>). Nothing final is
/// written when training fails. <c>lora dpo</c> is the same command on preference pairs
/// (<see cref="PreferenceDataset"/>, <see cref="DirectPreference"/>), with the DPO flags.
/// </summary>
internal static class TrainCommand
{
    public static Command Create(TextWriter output, TextWriter error) => Create(output, error, Mode.Sft);

    /// <summary><c>lora dpo</c>: LoRA or QLoRA trained on preference pairs; the reference is the base without the adapter.</summary>
    public static Command CreateDpo(TextWriter output, TextWriter error) => Create(output, error, Mode.Dpo);

    /// <summary><c>lora grpo</c>: LoRA or QLoRA trained on sampled completions scored by rewards.</summary>
    public static Command CreateGrpo(TextWriter output, TextWriter error) => Create(output, error, Mode.Grpo);

    private enum Mode
    {
        Sft,
        Dpo,
        Grpo,
    }

    private static Command Create(TextWriter output, TextWriter error, Mode mode)
    {
        bool preference = mode == Mode.Dpo, rl = mode == Mode.Grpo;
        var model = new ModelOptions();
        var backendOptions = new BackendOptions();
        var dataOptions = new DataOptions();
        var data = new Option<string>("--data")
        {
            Description = mode switch
            {
                Mode.Dpo => "preference pairs: JSONL with prompt, chosen and rejected (text, or chat messages)",
                Mode.Grpo => "prompts: JSONL with prompt (text or chat messages) and any string fields the rewards read",
                _ => "training file: JSONL (text, prompt/completion, messages or input_ids) or CSV/TSV",
            },
            Required = true,
        };
        var preferenceDefaults = new PreferenceOptions();
        var beta = new Option<double>("--beta") { Description = "DPO's β: how far the policy may move from the reference (smaller: further)", DefaultValueFactory = _ => preferenceDefaults.Beta };
        var lossType = new Option<string>("--loss") { Description = "sigmoid (DPO) or ipo", DefaultValueFactory = _ => "sigmoid" };
        var labelSmoothing = new Option<double>("--label-smoothing") { Description = "cDPO's ε: the chance a pair's label is wrong (sigmoid loss)", DefaultValueFactory = _ => 0 };
        var grpoDefaults = new GrpoOptions();
        var rewards = new Option<string[]>("--reward") { Description = "reward, repeatable and summed: regex:PATTERN, exact:FIELD, length:CHARS or cmd:COMMAND, optionally WEIGHT*KIND:ARG", Required = rl };
        var groupSize = new Option<int>("--group-size") { Description = "completions sampled per prompt", DefaultValueFactory = _ => grpoDefaults.GroupSize };
        var maxNewTokens = new Option<int>("--max-new-tokens") { Description = "longest completion sampled", DefaultValueFactory = _ => grpoDefaults.MaxCompletionLength };
        var temperature = new Option<double>("--temperature") { Description = "sampling temperature", DefaultValueFactory = _ => grpoDefaults.Temperature };
        var klBeta = new Option<double>("--kl-beta") { Description = "weight of the KL penalty toward the base without the adapter (0: none)", DefaultValueFactory = _ => grpoDefaults.KlBeta };
        var epsilon = new Option<double>("--epsilon") { Description = "policy-ratio clip ε", DefaultValueFactory = _ => grpoDefaults.Epsilon };
        var iterations = new Option<int>("--num-iterations") { Description = "optimizer steps per batch of sampled completions (μ; above 1 the ratio clip acts)", DefaultValueFactory = _ => grpoDefaults.Iterations };
        var grpoLoss = new Option<string>("--loss") { Description = "token averaging: bnpo (all tokens alike), grpo (per completion) or dr-grpo", DefaultValueFactory = _ => "bnpo" };
        var rpoAlpha = new Option<double>("--rpo-alpha") { Description = "RPO's α: add α × the chosen reply's mean token NLL (0: plain DPO)", DefaultValueFactory = _ => 0 };
        var valData = new Option<string?>("--val-data") { Description = "validation file, same format as --data" };
        var packing = new Option<bool>("--packing") { Description = "pack examples into rows of --seq-len tokens (each attends only to itself)" };
        var streaming = new Option<bool>("--streaming") { Description = "read --data lazily every epoch instead of into memory (files larger than memory; epochs shuffled through a 1024-row buffer)" };
        var outDir = new Option<string>("--out") { Description = "output folder (adapter, metrics.jsonl, checkpoints)", Required = true };
        var defaults = new LoraOptions();
        var train = new TrainingOptions();
        var rank = new Option<int>("--rank") { Description = "LoRA rank r", DefaultValueFactory = _ => defaults.Rank };
        var alpha = new Option<double>("--alpha") { Description = "LoRA alpha (scale s = alpha/r)", DefaultValueFactory = _ => defaults.Alpha };
        var dropout = new Option<double>("--dropout") { Description = "LoRA dropout", DefaultValueFactory = _ => defaults.Dropout };
        var targets = new Option<string>("--targets") { Description = "comma-separated target modules, or all-linear", DefaultValueFactory = _ => LoraOptions.AllLinear };
        var rsLora = new Option<bool>("--rslora") { Description = "scale s = alpha/sqrt(r)" };
        var init = new Option<string>("--init") { Description = "default, kaiming, gaussian or pissa", DefaultValueFactory = _ => "default" };
        var lr = new Option<double>("--lr") { Description = "peak learning rate", DefaultValueFactory = _ => train.LearningRate };
        var epochs = new Option<int>("--epochs") { Description = "passes over the data", DefaultValueFactory = _ => train.Epochs };
        var maxSteps = new Option<int?>("--max-steps") { Description = "optimizer steps (overrides --epochs)" };
        var batchSize = new Option<int>("--batch-size") { Description = "rows per micro-batch", DefaultValueFactory = _ => train.BatchSize };
        var gradAccum = new Option<int>("--grad-accum") { Description = "micro-batches per optimizer step", DefaultValueFactory = _ => train.GradientAccumulationSteps };
        var seqLen = new Option<int>("--seq-len") { Description = "truncate rows to this many tokens", DefaultValueFactory = _ => train.MaxSequenceLength };
        var warmup = new Option<double>("--warmup-ratio") { Description = "fraction of steps warming up", DefaultValueFactory = _ => train.WarmupRatio };
        var schedule = new Option<string>("--schedule") { Description = "constant, linear or cosine", DefaultValueFactory = _ => train.Schedule.ToString().ToLowerInvariant() };
        var weightDecay = new Option<double>("--weight-decay") { Description = "AdamW decoupled weight decay", DefaultValueFactory = _ => train.WeightDecay };
        var valFraction = new Option<double>("--val-fraction") { Description = "hold out this fraction of --data for validation", DefaultValueFactory = _ => 0 };
        var evalEvery = new Option<int>("--eval-every") { Description = "evaluate every N steps (0: each epoch)", DefaultValueFactory = _ => 0 };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "write a checkpoint every N steps into --out/checkpoints", DefaultValueFactory = _ => 0 };
        var seed = new Option<int>("--seed") { Description = "seed of data order, dropout and adapter init", DefaultValueFactory = _ => train.Seed };
        var full = new Option<bool>("--full") { Description = "full fine-tuning of every parameter instead of LoRA (needs --dtype f32)" };
        var resume = new Option<string?>("--resume") { Description = "checkpoint folder to resume from (same model, adapter flags and data)" };
        var threads = new Option<int>("--threads") { Description = "CPU threads", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = mode switch
        {
            Mode.Dpo => new Command("dpo", "Direct preference optimization with LoRA or QLoRA on pairs of replies (the reference is the base without the adapter); writes a PEFT adapter and metrics.jsonl to --out."),
            Mode.Grpo => new Command("grpo", "Group relative policy optimization with LoRA or QLoRA: sample groups of completions, score them with --reward, step on the clipped objective; writes a PEFT adapter and metrics.jsonl to --out."),
            _ => new Command("train", "Fine-tune with LoRA, QLoRA (--quantize nf4) or fully (--full); writes a PEFT adapter and metrics.jsonl to --out."),
        };
        foreach (Option option in new Option[]
            {
                data, valData, outDir, rank, alpha, dropout, targets, rsLora, init, lr, epochs, maxSteps, batchSize, gradAccum, seqLen, warmup, schedule,
                weightDecay, valFraction, evalEvery, checkpointEvery, seed, resume, threads,
            })
        {
            command.Options.Add(option);
        }

        if (preference || rl)
        {
            // Pairs and sampled groups: no packing, streaming or full fine-tuning (the reference is the base without the adapter).
            Option[] own = preference ? [beta, lossType, labelSmoothing, rpoAlpha] : [rewards, groupSize, maxNewTokens, temperature, klBeta, epsilon, grpoLoss, iterations];
            foreach (Option option in own.Append(dataOptions.ChatTemplate))
            {
                command.Options.Add(option);
            }
        }
        else
        {
            foreach (Option option in new Option[] { full, packing, streaming })
            {
                command.Options.Add(option);
            }

            dataOptions.AddTo(command);
        }

        model.AddTo(command, withAdapter: false);
        backendOptions.AddTo(command, withBf16Compute: true);
        command.SetAction((parse, cancellationToken) => Task.FromResult(CommandErrors.Guard(error, () =>
        {
            string outPath = Path.GetFullPath(parse.GetValue(outDir)!);
            bool isFull = parse.GetValue(full);
            LoraOptions? lora = isFull ? null : new LoraOptions
            {
                Rank = parse.GetValue(rank),
                Alpha = parse.GetValue(alpha),
                Dropout = parse.GetValue(dropout),
                TargetModules = parse.GetValue(targets)!.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries),
                UseRsLora = parse.GetValue(rsLora),
                Init = ParseInit(parse.GetValue(init)!),
            };
            var options = new TrainingOptions
            {
                LearningRate = parse.GetValue(lr),
                Epochs = parse.GetValue(epochs),
                MaxSteps = parse.GetValue(maxSteps),
                BatchSize = parse.GetValue(batchSize),
                GradientAccumulationSteps = parse.GetValue(gradAccum),
                MaxSequenceLength = parse.GetValue(seqLen),
                WarmupRatio = parse.GetValue(warmup),
                Schedule = ParseSchedule(parse.GetValue(schedule)!),
                WeightDecay = parse.GetValue(weightDecay),
                ValidationFraction = parse.GetValue(valFraction),
                EvalEverySteps = parse.GetValue(evalEvery),
                CheckpointEverySteps = parse.GetValue(checkpointEvery),
                CheckpointDirectory = parse.GetValue(checkpointEvery) > 0 ? Path.Combine(outPath, "checkpoints") : null,
                MetricsPath = Path.Combine(outPath, "metrics.jsonl"),
                Seed = parse.GetValue(seed),
                Packing = parse.GetValue(packing),
                Preference = preference ? new PreferenceOptions
                {
                    Beta = parse.GetValue(beta),
                    Loss = parse.GetValue(lossType)!.ToLowerInvariant() switch
                    {
                        "sigmoid" => PreferenceLossType.Sigmoid,
                        "ipo" => PreferenceLossType.Ipo,
                        var other => throw new ArgumentException($"--loss '{other}' is unknown: expected sigmoid or ipo"),
                    },
                    LabelSmoothing = parse.GetValue(labelSmoothing),
                    RpoAlpha = parse.GetValue(rpoAlpha),
                } : null,
                Grpo = rl ? new GrpoOptions
                {
                    GroupSize = parse.GetValue(groupSize),
                    MaxCompletionLength = parse.GetValue(maxNewTokens),
                    Temperature = parse.GetValue(temperature),
                    KlBeta = parse.GetValue(klBeta),
                    Epsilon = parse.GetValue(epsilon),
                    Iterations = parse.GetValue(iterations),
                    Loss = parse.GetValue(grpoLoss)!.ToLowerInvariant() switch
                    {
                        "bnpo" => GrpoLossType.Bnpo,
                        "grpo" => GrpoLossType.Grpo,
                        "dr-grpo" or "dr_grpo" => GrpoLossType.DrGrpo,
                        var other => throw new ArgumentException($"--loss '{other}' is unknown: expected bnpo, grpo or dr-grpo"),
                    },
                } : null,
            };
            string? resumeFrom = parse.GetValue(resume);
            if (resumeFrom is not null)
            {
                // A resumed run keeps the checkpoint's options except those given here; it writes to --out.
                var run = Checkpoint.Options(resumeFrom);
                bool Given(Option option) => parse.GetResult(option) is { Implicit: false };
                int every = Given(checkpointEvery) ? parse.GetValue(checkpointEvery) : run.CheckpointEverySteps;
                options = run with
                {
                    LearningRate = Given(lr) ? options.LearningRate : run.LearningRate,
                    Epochs = Given(epochs) ? options.Epochs : run.Epochs,
                    MaxSteps = Given(maxSteps) ? options.MaxSteps : run.MaxSteps,
                    BatchSize = Given(batchSize) ? options.BatchSize : run.BatchSize,
                    GradientAccumulationSteps = Given(gradAccum) ? options.GradientAccumulationSteps : run.GradientAccumulationSteps,
                    MaxSequenceLength = Given(seqLen) ? options.MaxSequenceLength : run.MaxSequenceLength,
                    WarmupRatio = Given(warmup) ? options.WarmupRatio : run.WarmupRatio,
                    Schedule = Given(schedule) ? options.Schedule : run.Schedule,
                    WeightDecay = Given(weightDecay) ? options.WeightDecay : run.WeightDecay,
                    ValidationFraction = Given(valFraction) ? options.ValidationFraction : run.ValidationFraction,
                    EvalEverySteps = Given(evalEvery) ? options.EvalEverySteps : run.EvalEverySteps,
                    Seed = Given(seed) ? options.Seed : run.Seed,
                    Packing = Given(packing) ? options.Packing : run.Packing,
                    Preference = new Option[] { beta, lossType, labelSmoothing, rpoAlpha }.Any(Given) ? options.Preference : run.Preference,
                    Grpo = new Option[] { groupSize, maxNewTokens, temperature, klBeta, epsilon, grpoLoss, iterations }.Any(Given) ? options.Grpo : run.Grpo,
                    CheckpointEverySteps = every,
                    CheckpointDirectory = every > 0 ? Path.Combine(outPath, "checkpoints") : null,
                    MetricsPath = Path.Combine(outPath, "metrics.jsonl"),
                };
                string changes = string.Join(", ", new (string Name, object? From, object? To)[]
                    {
                        ("epochs", run.Epochs, options.Epochs), ("max steps", run.MaxSteps, options.MaxSteps),
                        ("eval every", run.EvalEverySteps, options.EvalEverySteps), ("checkpoint every", run.CheckpointEverySteps, options.CheckpointEverySteps),
                    }.Where(static c => !Equals(c.From, c.To)).Select(static c => string.Create(CultureInfo.InvariantCulture, $"{c.Name} {c.From ?? "none"} → {c.To ?? "none"}")));
                output.WriteLine($"resuming {Path.GetFullPath(resumeFrom)} into {outPath}{(changes.Length == 0 ? string.Empty : $"; changed: {changes}")}");

                // The adapter as the run made it (its checkpoint records it); LoRA flags given must agree with it.
                if (!isFull && Checkpoint.AdapterOptions(resumeFrom) is { } trained)
                {
                    var differ = new (Option Flag, object Given, object Trained)[]
                    {
                        (rank, lora!.Rank, trained.Rank), (alpha, lora.Alpha, trained.Alpha), (dropout, lora.Dropout, trained.Dropout), (rsLora, lora.UseRsLora, trained.UseRsLora),
                    }.Where(f => Given(f.Flag) && !Equals(f.Given, f.Trained)).Select(static f => string.Create(CultureInfo.InvariantCulture, $"{f.Flag.Name} {f.Given} (the run's: {f.Trained})")).ToList();
                    if (differ.Count > 0)
                    {
                        throw new ArgumentException($"--resume continues the run's adapter; these flags differ from it: {string.Join(", ", differ)}");
                    }

                    lora = Given(targets) ? trained with { TargetModules = lora.TargetModules } : trained;
                }
            }

            options.Validate();
            var backend = backendOptions.Create(parse, parse.GetValue(threads));
            bool outExisted = Directory.Exists(outPath);
            bool metricsExisted = File.Exists(options.MetricsPath);
            EnsureWritable(outPath, isFull);
            try
            {
                return Train(parse, outPath, isFull, lora, options, backend, resumeFrom, cancellationToken);
            }
            catch
            {
                // A failed run leaves no trace but its checkpoints (a resume may want them).
                if (!metricsExisted && File.Exists(options.MetricsPath) && !Directory.Exists(options.CheckpointDirectory ?? string.Empty))
                {
                    File.Delete(options.MetricsPath!);
                }

                if (!outExisted && Directory.Exists(outPath) && !Directory.EnumerateFileSystemEntries(outPath).Any())
                {
                    Directory.Delete(outPath);
                }

                throw;
            }
        })));
        return command;

        int Train(ParseResult parse, string outPath, bool isFull, LoraOptions? lora, TrainingOptions options, Backend backend, string? resumeFrom, CancellationToken cancellationToken)
        {

            using var lm = model.Load(parse, backend);
            string modelDir = parse.GetValue(model.Model)!;
            bool stream = parse.GetValue(streaming);
            IReadOnlyList<TokenRow> Read(string path) => mode switch
            {
                Mode.Dpo => PreferenceDataset.Load(path, Text.Tokenizer.Load(modelDir), DataOptions.ResolveTemplate(parse.GetValue(dataOptions.ChatTemplate), modelDir), cancellationToken),
                Mode.Grpo => PromptDataset.Load(path, Text.Tokenizer.Load(modelDir), DataOptions.ResolveTemplate(parse.GetValue(dataOptions.ChatTemplate), modelDir), cancellationToken),
                _ => dataOptions.Load(parse, path, modelDir, lm.Config.VocabSize, error, cancellationToken),
            };
            var rows = stream ? null : Read(parse.GetValue(data)!);
            var validation = parse.GetValue(valData) is { } v ? Read(v) : null;
            if (isFull)
            {
                if (parse.GetValue(model.Quantize) is not null)
                {
                    throw new ArgumentException("--full trains every weight and cannot use --quantize nf4 (frozen NF4 weights); drop one of them");
                }

                lm.SetTrainable(true);
            }
            else
            {
                lm.AddAdapter(lora!, seed: options.Seed);
            }

            long trainable = lm.TrainableParameters().Sum(static p => p.Value.Length);
            string method = mode switch
            {
                Mode.Dpo => $"DPO ({options.Preference!.Loss.ToString().ToLowerInvariant()}, beta={options.Preference.Beta.ToString(CultureInfo.InvariantCulture)}) with ",
                Mode.Grpo => $"GRPO ({options.Grpo!.Loss.ToString().ToLowerInvariant()}, group {options.Grpo.GroupSize}) with ",
                _ => string.Empty,
            };
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{method}{(isFull ? "full fine-tuning" : $"LoRA r={lora!.Rank} alpha={lora.Alpha}")}{(parse.GetValue(model.Quantize) is null ? string.Empty : " over NF4 weights")}: {trainable:N0} trainable parameters, {(rows is null ? "streamed rows" : $"{rows.Count} {mode switch { Mode.Dpo => "pairs", Mode.Grpo => "prompts", _ => "rows" }}")}{(backend.IsHost ? string.Empty : $", on the {backend} backend")}"));
            using var trainer = resumeFrom is not null ? Trainer.Resume(lm, resumeFrom, options) : new Trainer(lm, options);
            var progress = new ProgressPrinter(error);
            TrainingResult result;
            if (rl)
            {
                var (reward, resources) = GrpoRewards.Parse(parse.GetValue(rewards) ?? []);
                try
                {
                    result = trainer.Train(rows!, reward, Text.Tokenizer.Load(modelDir), validation, progress, cancellationToken);
                }
                finally
                {
                    foreach (var resource in resources)
                    {
                        resource.Dispose();
                    }
                }
            }
            else
            {
                result = rows is null
                    ? trainer.Train(dataOptions.Open(parse, parse.GetValue(data)!, modelDir, lm.Config.VocabSize), validation, progress, cancellationToken)
                    : trainer.Train(rows, validation, progress, cancellationToken);
            }

            progress.Finish();

            string saved;
            if (isFull)
            {
                saved = Path.Combine(outPath, "model");
                lm.Save(saved);
            }
            else
            {
                saved = outPath;
                lm.SaveAdapter(outPath, baseModelNameOrPath: parse.GetValue(model.Model), options: lora);
            }

            string val = result.LastValidationLoss is double vl ? string.Create(CultureInfo.InvariantCulture, $" val_loss={vl:F4}") : string.Empty;
            string loss = result.StepLosses.Count > 0 ? string.Create(CultureInfo.InvariantCulture, $" loss={result.StepLosses[^1]:F4}") : " (no steps left to take)";
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"steps={result.GlobalStep}{loss}{val} saved={saved}"));
            return 0;
        }
    }

    private static LoraInit ParseInit(string text) => text.ToLowerInvariant() switch
    {
        "default" => LoraInit.Default,
        "kaiming" => LoraInit.KaimingUniform,
        "gaussian" => LoraInit.Gaussian,
        "pissa" => LoraInit.Pissa,
        _ => throw new ArgumentException($"--init '{text}' is unknown: expected default, kaiming, gaussian or pissa"),
    };

    private static LearningRateScheduleKind ParseSchedule(string text) => text.ToLowerInvariant() switch
    {
        "constant" => LearningRateScheduleKind.Constant,
        "linear" => LearningRateScheduleKind.Linear,
        "cosine" => LearningRateScheduleKind.Cosine,
        _ => throw new ArgumentException($"--schedule '{text}' is unknown: expected constant, linear or cosine"),
    };

    // Fail before hours of training, not after: the folder must be creatable and writable, and must not
    // hold an adapter or model already.
    private static void EnsureWritable(string outPath, bool full)
    {
        if (File.Exists(outPath))
        {
            throw new IOException($"--out '{outPath}' is a file; expected a folder");
        }

        if (File.Exists(Path.Combine(outPath, "adapter_model.safetensors")) || (full && Directory.Exists(Path.Combine(outPath, "model"))))
        {
            throw new IOException($"--out '{outPath}' already holds a trained {(full ? "model" : "adapter")}; choose a new folder");
        }

        try
        {
            Directory.CreateDirectory(outPath);
            string probe = Path.Combine(outPath, $".write-test-{Guid.NewGuid():N}");
            File.WriteAllText(probe, string.Empty);
            File.Delete(probe);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"--out '{outPath}' is not writable: {e.Message}", e);
        }
    }

    /// <summary>One status line on stderr: redrawn in place on a terminal, every 10% of the run otherwise.</summary>
    private sealed class ProgressPrinter(TextWriter error) : IProgress<TrainingProgress>
    {
        private readonly bool redraw = ReferenceEquals(error, Console.Error) && !Console.IsErrorRedirected;
        private int lastPrinted;

        public void Report(TrainingProgress p)
        {
            int width = 24, filled = p.TotalSteps == 0 ? width : (int)((long)width * p.Step / p.TotalSteps);
            string bar = new string('#', filled) + new string('-', width - filled);
            string val = p.ValidationLoss is double v ? string.Create(CultureInfo.InvariantCulture, $" val_loss={v:F4}") : string.Empty;
            string line = string.Create(CultureInfo.InvariantCulture, $"[{bar}] step {p.Step}/{p.TotalSteps} loss={p.Loss:F4} lr={p.LearningRate:G3} tok/s={p.TokensPerSecond:F0}{val}");
            if (redraw)
            {
                error.Write("\r" + line);
            }
            else if (p.Step == p.TotalSteps || p.ValidationLoss is not null || p.Step - lastPrinted >= Math.Max(1, p.TotalSteps / 10))
            {
                error.WriteLine(line);
                lastPrinted = p.Step;
            }
        }

        public void Finish()
        {
            if (redraw)
            {
                error.WriteLine();
            }
        }
    }
}
