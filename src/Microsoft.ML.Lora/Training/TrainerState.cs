using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Everything besides tensors that a resumed run needs to continue bit for bit, as written to
/// <c>trainer_state.json</c>. Randomness is stateless (<see cref="TrainingRandom"/>): the "rng" object
/// records the algorithm, seed and next micro-step, from which every later draw follows.
/// </summary>
internal sealed class TrainerState
{
    public const string Format = "microsoft.ml.lora.trainer_state";
    public const int Version = 1;

    /// <summary>The run's options; a resume may replace them with compatible ones (see <see cref="ResumeOptions"/>).</summary>
    public required TrainingOptions Options { get; set; }

    /// <summary>Optimizer steps done.</summary>
    public int GlobalStep { get; set; }

    /// <summary>Steps of the whole run (0 until the data is known).</summary>
    public int TotalSteps { get; set; }

    public int StepsPerEpoch { get; set; }

    /// <summary>0-based epoch the next step belongs to.</summary>
    public int Epoch { get; set; }

    /// <summary>Rows of <see cref="Epoch"/>'s shuffled order already consumed.</summary>
    public int EpochPosition { get; set; }

    /// <summary>Global micro-step of the next forward/backward (the dropout stream's counter).</summary>
    public long NextMicroStep { get; set; }

    public int TrainRows { get; set; }

    public int ValidationRows { get; set; }

    /// <summary>Fingerprint of the training rows (0 until the data is known).</summary>
    public ulong DataFingerprint { get; set; }

    public double? LastLoss { get; set; }

    public double? LastValidationLoss { get; set; }

    public double? BestValidationLoss { get; set; }

    public int? BestValidationStep { get; set; }

    /// <summary>The dtype of the base model's frozen projection weights ("nf4", "bf16", "f32"), or null in older checkpoints.</summary>
    public string? BaseDType { get; set; }

    /// <summary>FNV-1a 64 of the base model's config.json text, or null in older checkpoints.</summary>
    public string? BaseConfig { get; set; }

    /// <summary>The state as JSON; output paths are written relative to <paramref name="checkpointFolder"/>, where the file goes.</summary>
    public byte[] ToJson(string checkpointFolder)
    {
        using var ms = new MemoryStream();
        using (var json = new Utf8JsonWriter(ms, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteString("format", Format);
            json.WriteNumber("version", Version);
            json.WriteNumber("global_step", GlobalStep);
            json.WriteNumber("total_steps", TotalSteps);
            json.WriteNumber("steps_per_epoch", StepsPerEpoch);
            json.WriteNumber("epoch", Epoch);
            json.WriteNumber("epoch_position", EpochPosition);
            json.WriteStartObject("rng");
            json.WriteString("algorithm", "splitmix64");
            json.WriteNumber("seed", Options.Seed);
            json.WriteNumber("next_micro_step", NextMicroStep);
            json.WriteEndObject();
            json.WriteNumber("train_rows", TrainRows);
            json.WriteNumber("validation_rows", ValidationRows);
            json.WriteString("data_fingerprint", DataFingerprint.ToString("x16", CultureInfo.InvariantCulture));
            WriteNullable(json, "last_loss", LastLoss);
            WriteNullable(json, "last_validation_loss", LastValidationLoss);
            WriteNullable(json, "best_validation_loss", BestValidationLoss);
            WriteNullable(json, "best_validation_step", BestValidationStep);
            if (BaseDType is not null)
            {
                json.WriteString("base_dtype", BaseDType);
            }

            if (BaseConfig is not null)
            {
                json.WriteString("base_config", BaseConfig);
            }

            json.WriteStartObject("options");
            WriteOptions(json, Options, checkpointFolder);
            json.WriteEndObject();
            json.WriteEndObject();
        }

        return ms.ToArray();
    }

    public static TrainerState Read(string path)
    {
        byte[] bytes;
        try
        {
            bytes = File.ReadAllBytes(path);
        }
        catch (FileNotFoundException e)
        {
            throw new FileNotFoundException($"'{Path.GetDirectoryName(path)}' is not a complete checkpoint: {Path.GetFileName(path)} not found", path, e);
        }

        using var doc = StrictJson.Parse(bytes, path, "trainer state");
        var r = new Reader(doc.RootElement, path, string.Empty);
        if (r.String("format") != Format)
        {
            throw new InvalidDataException($"{path}: \"format\" is not \"{Format}\"; not a trainer state of this library");
        }

        int version = r.Int("version");
        if (version != Version)
        {
            throw new InvalidDataException($"{path}: trainer state version {version} is not supported (expected {Version})");
        }

        var options = ReadOptions(r.Object("options"), Path.GetDirectoryName(Path.GetFullPath(path))!);
        try
        {
            options.Validate();
        }
        catch (ArgumentException e)
        {
            throw new InvalidDataException($"{path}: saved options are invalid: {e.Message}", e);
        }

        var rng = r.Object("rng");
        if (rng.String("algorithm") != "splitmix64" || rng.Int("seed") != options.Seed)
        {
            throw new InvalidDataException($"{path}: \"rng\" must be splitmix64 with the seed of the options ({options.Seed})");
        }

        string fingerprint = r.String("data_fingerprint");
        if (!ulong.TryParse(fingerprint, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong fp))
        {
            throw new InvalidDataException($"{path}: \"data_fingerprint\" = \"{fingerprint}\" is not a 64-bit hex number");
        }

        return new TrainerState
        {
            Options = options,
            GlobalStep = r.NonNegativeInt("global_step"),
            TotalSteps = r.NonNegativeInt("total_steps"),
            StepsPerEpoch = r.NonNegativeInt("steps_per_epoch"),
            Epoch = r.NonNegativeInt("epoch"),
            EpochPosition = r.NonNegativeInt("epoch_position"),
            NextMicroStep = rng.Long("next_micro_step"),
            TrainRows = r.NonNegativeInt("train_rows"),
            ValidationRows = r.NonNegativeInt("validation_rows"),
            DataFingerprint = fp,
            LastLoss = r.NullableDouble("last_loss"),
            LastValidationLoss = r.NullableDouble("last_validation_loss"),
            BestValidationLoss = r.NullableDouble("best_validation_loss"),
            BestValidationStep = r.NullableInt("best_validation_step"),
            BaseDType = r.OptionalString("base_dtype"),
            BaseConfig = r.OptionalString("base_config"),
        };
    }

    private static void WriteOptions(Utf8JsonWriter json, TrainingOptions o, string checkpointFolder)
    {
        json.WriteNumber("learning_rate", o.LearningRate);
        json.WriteNumber("weight_decay", o.WeightDecay);
        json.WriteNumber("beta1", o.Beta1);
        json.WriteNumber("beta2", o.Beta2);
        json.WriteNumber("epsilon", o.Epsilon);
        json.WriteNumber("epochs", o.Epochs);
        WriteNullable(json, "max_steps", o.MaxSteps);
        json.WriteNumber("batch_size", o.BatchSize);
        json.WriteNumber("gradient_accumulation_steps", o.GradientAccumulationSteps);
        json.WriteNumber("max_sequence_length", o.MaxSequenceLength);
        json.WriteNumber("warmup_ratio", o.WarmupRatio);
        WriteNullable(json, "warmup_steps", o.WarmupSteps);
        json.WriteString("schedule", o.Schedule.ToString());
        json.WriteNumber("max_grad_norm", o.MaxGradNorm);
        json.WriteNumber("seed", o.Seed);
        json.WriteBoolean("shuffle", o.Shuffle);
        json.WriteBoolean("packing", o.Packing);
        json.WriteNumber("validation_fraction", o.ValidationFraction);
        json.WriteNumber("eval_every_steps", o.EvalEverySteps);
        json.WriteNumber("checkpoint_every_steps", o.CheckpointEverySteps);
        // Relative to the checkpoint folder, so a run folder moved or copied elsewhere resumes into itself.
        WriteNullable(json, "checkpoint_directory", o.CheckpointDirectory is null ? null : Path.GetRelativePath(checkpointFolder, Path.GetFullPath(o.CheckpointDirectory)));
        WriteNullable(json, "metrics_path", o.MetricsPath is null ? null : Path.GetRelativePath(checkpointFolder, Path.GetFullPath(o.MetricsPath)));
        if (o.Preference is { } preference)
        {
            json.WriteStartObject("preference");
            json.WriteNumber("beta", preference.Beta);
            json.WriteString("loss", preference.Loss.ToString());
            json.WriteNumber("label_smoothing", preference.LabelSmoothing);
            json.WriteNumber("rpo_alpha", preference.RpoAlpha);
            json.WriteEndObject();
        }

        if (o.Grpo is { } grpo)
        {
            json.WriteStartObject("grpo");
            json.WriteNumber("group_size", grpo.GroupSize);
            json.WriteNumber("epsilon", grpo.Epsilon);
            json.WriteNumber("kl_beta", grpo.KlBeta);
            json.WriteBoolean("scale_rewards", grpo.ScaleRewards);
            json.WriteString("loss", grpo.Loss.ToString());
            json.WriteNumber("max_completion_length", grpo.MaxCompletionLength);
            json.WriteNumber("temperature", grpo.Temperature);
            json.WriteNumber("num_iterations", grpo.Iterations);
            json.WriteEndObject();
        }
    }

    private static TrainingOptions ReadOptions(Reader r, string checkpointFolder)
    {
        var kind = r.Enum<LearningRateScheduleKind>("schedule");

        return new TrainingOptions
        {
            LearningRate = r.Double("learning_rate"),
            WeightDecay = r.Double("weight_decay"),
            Beta1 = r.Double("beta1"),
            Beta2 = r.Double("beta2"),
            Epsilon = r.Double("epsilon"),
            Epochs = r.Int("epochs"),
            MaxSteps = r.NullableInt("max_steps"),
            BatchSize = r.Int("batch_size"),
            GradientAccumulationSteps = r.Int("gradient_accumulation_steps"),
            MaxSequenceLength = r.Int("max_sequence_length"),
            WarmupRatio = r.Double("warmup_ratio"),
            WarmupSteps = r.NullableInt("warmup_steps"),
            Schedule = kind,
            MaxGradNorm = r.Double("max_grad_norm"),
            Seed = r.Int("seed"),
            Shuffle = r.Bool("shuffle"),
            Packing = r.Bool("packing"),
            ValidationFraction = r.Double("validation_fraction"),
            EvalEverySteps = r.Int("eval_every_steps"),
            CheckpointEverySteps = r.Int("checkpoint_every_steps"),
            CheckpointDirectory = Resolve(r.NullableString("checkpoint_directory")),
            MetricsPath = Resolve(r.NullableString("metrics_path")),
            Preference = r.Has("preference") ? ReadPreference(r.Object("preference")) : null,
            Grpo = r.Has("grpo") ? ReadGrpo(r.Object("grpo")) : null,
        };

        // Relative paths are the checkpoint folder's (absolute ones, from older checkpoints, stay as they are).
        string? Resolve(string? path) => path is null ? null : Path.GetFullPath(Path.Combine(checkpointFolder, path));
    }

    private static GrpoOptions ReadGrpo(Reader r)
    {
        var kind = r.Enum<GrpoLossType>("loss");

        return new GrpoOptions
        {
            GroupSize = r.Int("group_size"),
            Epsilon = r.Double("epsilon"),
            KlBeta = r.Double("kl_beta"),
            ScaleRewards = r.Bool("scale_rewards"),
            Loss = kind,
            MaxCompletionLength = r.Int("max_completion_length"),
            Temperature = r.Double("temperature"),
            Iterations = r.Has("num_iterations") ? r.Int("num_iterations") : 1,
        };
    }

    private static PreferenceOptions ReadPreference(Reader r)
    {
        var kind = r.Enum<PreferenceLossType>("loss");

        return new PreferenceOptions { Beta = r.Double("beta"), Loss = kind, LabelSmoothing = r.Double("label_smoothing"), RpoAlpha = r.Double("rpo_alpha") };
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, double? value)
    {
        if (value is double v && double.IsFinite(v))
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, int? value)
    {
        if (value is int v)
        {
            json.WriteNumber(name, v);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private static void WriteNullable(Utf8JsonWriter json, string name, string? value)
    {
        if (value is null)
        {
            json.WriteNull(name);
        }
        else
        {
            json.WriteString(name, value);
        }
    }

    /// <summary>Typed field access whose errors name the file and the field.</summary>
    private readonly struct Reader(JsonElement element, string file, string prefix)
    {
        public string File => file;

        public Reader Object(string name) => new(Get(name, JsonValueKind.Object), file, prefix + name + ".");

        public bool Has(string name) => element.TryGetProperty(name, out var e) && e.ValueKind != JsonValueKind.Null;

        public string String(string name) => Get(name, JsonValueKind.String).GetString()!;

        public T Enum<T>(string name)
            where T : struct, System.Enum
        {
            string text = String(name);
            return System.Enum.TryParse(text, ignoreCase: false, out T value) && System.Enum.IsDefined(value)
                ? value
                : throw Bad(name, $"one of {string.Join(", ", System.Enum.GetNames<T>())} (got \"{text}\")");
        }

        public string? NullableString(string name) => IsNull(name) ? null : String(name);

        public string? OptionalString(string name) => element.TryGetProperty(name, out _) ? NullableString(name) : null;

        public bool Bool(string name)
        {
            var e = Field(name);
            return e.ValueKind switch
            {
                JsonValueKind.True => true,
                JsonValueKind.False => false,
                _ => throw Bad(name, "a boolean"),
            };
        }

        public double Double(string name) => Get(name, JsonValueKind.Number).GetDouble();

        public double? NullableDouble(string name) => IsNull(name) ? null : Double(name);

        public long Long(string name) => Get(name, JsonValueKind.Number).TryGetInt64(out long v) ? v : throw Bad(name, "an integer");

        public int Int(string name) => Get(name, JsonValueKind.Number).TryGetInt32(out int v) ? v : throw Bad(name, "a 32-bit integer");

        public int? NullableInt(string name) => IsNull(name) ? null : Int(name);

        public int NonNegativeInt(string name) => Int(name) is int v && v >= 0 ? v : throw Bad(name, "an integer ≥ 0");

        private bool IsNull(string name) => Field(name).ValueKind == JsonValueKind.Null;

        private JsonElement Get(string name, JsonValueKind kind)
        {
            var e = Field(name);
            return e.ValueKind == kind ? e : throw Bad(name, $"a JSON {kind.ToString().ToLowerInvariant()}");
        }

        private JsonElement Field(string name) =>
            element.TryGetProperty(name, out var e) ? e : throw new InvalidDataException($"{file}: \"{prefix}{name}\" is missing");

        private InvalidDataException Bad(string name, string expected) =>
            new($"{file}: \"{prefix}{name}\" must be {expected}");
    }
}
