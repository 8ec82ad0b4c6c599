using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>
/// A job request turned into the library's options: every field checked, errors collected by field
/// name (<c>training.learningRate</c>) rather than thrown one at a time.
/// </summary>
internal sealed record JobPlan(LoraOptions Lora, TrainingOptions Training, TextDatasetOptions Data, string? ChatTemplateName, bool Quantize, bool DoubleQuant, IReadOnlyList<string> Rewards)
{
    private static readonly string[] Schedules = ["constant", "linear", "cosine"];

    /// <summary>The plan, or null with <paramref name="errors"/> filled.</summary>
    public static JobPlan? Build(JobRequest request, int defaultCheckpointEvery, FieldErrors errors)
    {
        var lora = request.Lora ?? new LoraRequest();
        var train = request.Training ?? new TrainingRequest();
        var data = request.Data ?? new DataRequest();
        var loraDefaults = new LoraOptions();
        var trainDefaults = new TrainingOptions();

        int rank = lora.Rank ?? loraDefaults.Rank;
        double alpha = lora.Alpha ?? loraDefaults.Alpha;
        double dropout = lora.Dropout ?? loraDefaults.Dropout;
        errors.Require(rank >= 1, "lora.rank", $"must be ≥ 1 (got {rank})");
        errors.Require(double.IsFinite(alpha) && alpha > 0, "lora.alpha", $"must be a finite number > 0 (got {Show(alpha)})");
        errors.Require(dropout >= 0 && dropout < 1, "lora.dropout", $"must be in [0, 1) (got {Show(dropout)})");
        var targets = lora.Targets ?? [LoraOptions.AllLinear];
        errors.Require(targets.Count > 0 && targets.All(t => !string.IsNullOrWhiteSpace(t)), "lora.targets", "must list at least one module name (or \"all-linear\"), none empty");
        errors.Require(lora.Quantize is null or "nf4", "lora.quantize", $"must be null or \"nf4\" (got '{lora.Quantize}')");
        errors.Require(lora.DoubleQuant != true || lora.Quantize == "nf4", "lora.doubleQuant", "needs lora.quantize = \"nf4\"");

        double lr = train.LearningRate ?? trainDefaults.LearningRate;
        int epochs = train.Epochs ?? trainDefaults.Epochs;
        int batch = train.BatchSize ?? trainDefaults.BatchSize;
        int accum = train.GradientAccumulationSteps ?? trainDefaults.GradientAccumulationSteps;
        int seqLen = train.MaxSequenceLength ?? trainDefaults.MaxSequenceLength;
        int checkpointEvery = train.CheckpointEvery ?? defaultCheckpointEvery;
        double warmup = train.WarmupRatio ?? trainDefaults.WarmupRatio;
        double decay = train.WeightDecay ?? trainDefaults.WeightDecay;
        string schedule = (train.Schedule ?? trainDefaults.Schedule.ToString()).ToLowerInvariant();
        errors.Require(double.IsFinite(lr) && lr > 0, "training.learningRate", $"must be > 0 (got {Show(lr)})");
        errors.Require(epochs >= 1, "training.epochs", $"must be ≥ 1 (got {epochs})");
        errors.Require(train.MaxSteps is null or >= 1, "training.maxSteps", $"must be null or ≥ 1 (got {train.MaxSteps})");
        errors.Require(batch >= 1, "training.batchSize", $"must be ≥ 1 (got {batch})");
        errors.Require(accum >= 1, "training.gradientAccumulationSteps", $"must be ≥ 1 (got {accum})");
        errors.Require(seqLen >= 2, "training.maxSequenceLength", $"must be ≥ 2 (got {seqLen})");
        errors.Require(checkpointEvery >= 0, "training.checkpointEvery", $"must be ≥ 0 (got {checkpointEvery})");
        errors.Require(warmup is >= 0 and <= 1, "training.warmupRatio", $"must be in [0, 1] (got {Show(warmup)})");
        errors.Require(double.IsFinite(decay) && decay >= 0, "training.weightDecay", $"must be ≥ 0 (got {Show(decay)})");
        errors.Require(Schedules.Contains(schedule), "training.schedule", $"must be constant, linear or cosine (got '{train.Schedule}')");

        bool knownFormat = DatasetFormats.TryParse(data.Format ?? "auto", out var format);
        errors.Require(knownFormat, "data.format", $"must be one of {string.Join(", ", DatasetFormats.Names)} (got '{data.Format}')");
        errors.Require(data.TextColumn is null || !string.IsNullOrWhiteSpace(data.TextColumn), "data.textColumn", "must not be empty");
        errors.Require(data.CompletionColumn is null || (!string.IsNullOrWhiteSpace(data.CompletionColumn) && data.CompletionColumn != (data.TextColumn ?? "text")), "data.completionColumn", "must be a non-empty column other than data.textColumn");
        if (data.ChatTemplate is string name && !ChatTemplate.Names.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            errors.Add("data.chatTemplate", $"must be one of {string.Join(", ", ChatTemplate.Names)} (got '{name}')");
        }

        string kind = (request.Kind ?? "sft").ToLowerInvariant();
        errors.Require(kind is "sft" or "dpo" or "grpo", "kind", $"must be \"sft\", \"dpo\" or \"grpo\" (got '{request.Kind}')");
        errors.Require(request.Preference is null || kind == "dpo", "preference", "applies to kind \"dpo\" only");
        errors.Require(request.Grpo is null || kind == "grpo", "grpo", "applies to kind \"grpo\" only");
        GrpoOptions? grpo = null;
        IReadOnlyList<string> rewards = [];
        if (kind == "grpo")
        {
            var g = request.Grpo ?? new GrpoRequest();
            rewards = g.Rewards ?? [];
            try
            {
                GrpoRewards.Parse(rewards, allowCommands: false);
            }
            catch (ArgumentException e)
            {
                errors.Add("grpo.rewards", e.Message);
            }

            var defaults = new GrpoOptions();
            string loss = (g.Loss ?? "bnpo").ToLowerInvariant();
            errors.Require(loss is "bnpo" or "grpo" or "dr-grpo", "grpo.loss", $"must be \"bnpo\", \"grpo\" or \"dr-grpo\" (got '{g.Loss}')");
            grpo = new GrpoOptions
            {
                GroupSize = g.GroupSize ?? defaults.GroupSize,
                MaxCompletionLength = g.MaxNewTokens ?? defaults.MaxCompletionLength,
                Temperature = g.Temperature ?? defaults.Temperature,
                KlBeta = g.KlBeta ?? defaults.KlBeta,
                Epsilon = g.Epsilon ?? defaults.Epsilon,
                Iterations = g.NumIterations ?? defaults.Iterations,
                Loss = loss switch { "grpo" => GrpoLossType.Grpo, "dr-grpo" => GrpoLossType.DrGrpo, _ => GrpoLossType.Bnpo },
            };
            try
            {
                grpo.Validate();
            }
            catch (ArgumentException e)
            {
                string field = e.ParamName switch { "MaxCompletionLength" => "maxNewTokens", "Iterations" => "numIterations", var n => char.ToLowerInvariant(n![0]) + n[1..] };
                errors.Add("grpo." + field, e.Message.Split(" (Parameter", 2)[0]);
            }
        }
        PreferenceOptions? preference = null;
        if (kind == "dpo")
        {
            var p = request.Preference ?? new PreferenceRequest();
            var defaults = new PreferenceOptions();
            string loss = (p.Loss ?? "sigmoid").ToLowerInvariant();
            errors.Require(loss is "sigmoid" or "ipo", "preference.loss", $"must be \"sigmoid\" or \"ipo\" (got '{p.Loss}')");
            preference = new PreferenceOptions
            {
                Beta = p.Beta ?? defaults.Beta,
                Loss = loss == "ipo" ? PreferenceLossType.Ipo : PreferenceLossType.Sigmoid,
                LabelSmoothing = p.LabelSmoothing ?? defaults.LabelSmoothing,
                RpoAlpha = p.RpoAlpha ?? defaults.RpoAlpha,
            };
            try
            {
                preference.Validate();
            }
            catch (ArgumentException e)
            {
                errors.Add("preference." + char.ToLowerInvariant(e.ParamName![0]) + e.ParamName[1..], e.Message.Split(" (Parameter", 2)[0]);
            }
        }

        if (!errors.IsEmpty)
        {
            return null;
        }

        var loraOptions = new LoraOptions { Rank = rank, Alpha = alpha, Dropout = dropout, TargetModules = targets.ToArray(), UseRsLora = lora.RsLora ?? false };
        var training = new TrainingOptions
        {
            LearningRate = lr,
            Epochs = epochs,
            MaxSteps = train.MaxSteps,
            BatchSize = batch,
            GradientAccumulationSteps = accum,
            MaxSequenceLength = seqLen,
            Seed = train.Seed ?? trainDefaults.Seed,
            CheckpointEverySteps = checkpointEvery,
            WarmupRatio = warmup,
            WeightDecay = decay,
            Schedule = Enum.Parse<LearningRateScheduleKind>(schedule, ignoreCase: true),
            Preference = preference,
            Grpo = grpo,
        };
        var dataset = new TextDatasetOptions
        {
            Format = format,
            TextColumn = data.TextColumn ?? "text",
            CompletionColumn = data.CompletionColumn,
            TrainOnPrompt = data.TrainOnPrompt ?? false,
            SkipBadRows = data.SkipBadRows ?? false,
        };
        return new JobPlan(loraOptions, training, dataset, data.ChatTemplate, lora.Quantize == "nf4", lora.DoubleQuant ?? false, rewards);
    }


    private static string Show(double value) => value.ToString("R", CultureInfo.InvariantCulture);
}
