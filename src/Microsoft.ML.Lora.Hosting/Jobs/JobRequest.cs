namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>
/// The body of <c>POST /jobs</c>: which base model to adapt, on which data, where the adapter goes, and
/// the LoRA, training and data options (each section optional; omitted values take the library defaults).
/// </summary>
public sealed class JobRequest
{
    /// <summary>Base model folder (config.json + safetensors), relative to the model root (or absolute inside it).</summary>
    public string? Model { get; set; }

    /// <summary>Training data file, relative to the dataset root (or absolute inside it).</summary>
    public string? Dataset { get; set; }

    /// <summary>Name of the adapter folder created under the output root.</summary>
    public string? Output { get; set; }

    /// <summary>LoRA options.</summary>
    public LoraRequest? Lora { get; set; }

    /// <summary>Training options.</summary>
    public TrainingRequest? Training { get; set; }

    /// <summary>How the data file becomes token rows.</summary>
    public DataRequest? Data { get; set; }

    /// <summary>
    /// <c>"sft"</c> (default): supervised fine-tuning on the data's rows; <c>"dpo"</c>: direct preference optimization
    /// on pairs (JSONL with prompt, chosen and rejected; see <see cref="Preference"/>); <c>"grpo"</c>: group relative
    /// policy optimization on prompts (JSONL with prompt and the fields the rewards read; see <see cref="Grpo"/>).
    /// </summary>
    public string? Kind { get; set; }

    /// <summary>With <c>kind = "grpo"</c>: the rewards and sampling options.</summary>
    public GrpoRequest? Grpo { get; set; }

    /// <summary>With <c>kind = "dpo"</c>: β, the loss and its options.</summary>
    public PreferenceRequest? Preference { get; set; }
}

/// <summary>GRPO options of a job (<see cref="Training.GrpoOptions"/>).</summary>
public sealed class GrpoRequest
{
    /// <summary>Rewards as <c>lora grpo --reward</c> spells them (regex:, exact:, length:, weighted); external commands are refused. Required.</summary>
    public IReadOnlyList<string>? Rewards { get; set; }

    /// <summary>Completions per prompt. Default 8.</summary>
    public int? GroupSize { get; set; }

    /// <summary>Longest completion in tokens. Default 256.</summary>
    public int? MaxNewTokens { get; set; }

    /// <summary>Sampling temperature. Default 1.</summary>
    public double? Temperature { get; set; }

    /// <summary>KL penalty weight toward the base. Default 0.</summary>
    public double? KlBeta { get; set; }

    /// <summary>Ratio clip ε. Default 0.2.</summary>
    public double? Epsilon { get; set; }

    /// <summary>Optimizer steps per batch of sampled completions (μ). Default 1.</summary>
    public int? NumIterations { get; set; }

    /// <summary><c>bnpo</c> (default), <c>grpo</c> or <c>dr-grpo</c>.</summary>
    public string? Loss { get; set; }
}

/// <summary>DPO options of a job (<see cref="Training.PreferenceOptions"/>).</summary>
public sealed class PreferenceRequest
{
    /// <summary>β. Default 0.1.</summary>
    public double? Beta { get; set; }

    /// <summary><c>sigmoid</c> (default, DPO) or <c>ipo</c>.</summary>
    public string? Loss { get; set; }

    /// <summary>cDPO's label smoothing ε. Default 0.</summary>
    public double? LabelSmoothing { get; set; }

    /// <summary>RPO's α. Default 0.</summary>
    public double? RpoAlpha { get; set; }
}

/// <summary>LoRA options of a job (PEFT's <c>LoraConfig</c> subset).</summary>
public sealed class LoraRequest
{
    /// <summary>Rank r. Default 8.</summary>
    public int? Rank { get; set; }

    /// <summary>α (scale α/r). Default 32.</summary>
    public double? Alpha { get; set; }

    /// <summary>Adapter input dropout. Default 0.</summary>
    public double? Dropout { get; set; }

    /// <summary>Target modules, or <c>["all-linear"]</c> (default).</summary>
    public IReadOnlyList<string>? Targets { get; set; }

    /// <summary>rsLoRA scale α/√r. Default false.</summary>
    public bool? RsLora { get; set; }

    /// <summary><c>"nf4"</c> trains over NF4-quantized base weights (QLoRA); null (default) keeps F32.</summary>
    public string? Quantize { get; set; }

    /// <summary>With <c>nf4</c>: also quantize the absmax constants. Default false.</summary>
    public bool? DoubleQuant { get; set; }
}

/// <summary>Training options of a job (<see cref="Training.TrainingOptions"/> subset).</summary>
public sealed class TrainingRequest
{
    /// <summary>Peak learning rate. Default 2e-4.</summary>
    public double? LearningRate { get; set; }

    /// <summary>Passes over the data. Default 1.</summary>
    public int? Epochs { get; set; }

    /// <summary>Optimizer steps; overrides epochs.</summary>
    public int? MaxSteps { get; set; }

    /// <summary>Rows per micro-batch. Default 4.</summary>
    public int? BatchSize { get; set; }

    /// <summary>Micro-batches per optimizer step. Default 1.</summary>
    public int? GradientAccumulationSteps { get; set; }

    /// <summary>Rows are truncated to this many tokens. Default 1024.</summary>
    public int? MaxSequenceLength { get; set; }

    /// <summary>Seed of data order, dropout and adapter init. Default 42.</summary>
    public int? Seed { get; set; }

    /// <summary>Checkpoint every N steps (0 = only when the host stops). Default: the service's setting.</summary>
    public int? CheckpointEvery { get; set; }

    /// <summary>Warmup fraction of the steps. Default 0.03.</summary>
    public double? WarmupRatio { get; set; }

    /// <summary><c>constant</c>, <c>linear</c> (default) or <c>cosine</c>.</summary>
    public string? Schedule { get; set; }

    /// <summary>AdamW weight decay. Default 0.</summary>
    public double? WeightDecay { get; set; }
}

/// <summary>Data options of a job (<see cref="Training.TextDatasetOptions"/> subset).</summary>
public sealed class DataRequest
{
    /// <summary><c>auto</c> (default), <c>text</c>, <c>prompt-completion</c>, <c>messages</c>, <c>tokenized</c>, <c>csv</c> or <c>tsv</c>.</summary>
    public string? Format { get; set; }

    /// <summary>CSV/TSV column with the text (or prompt). Default <c>text</c>.</summary>
    public string? TextColumn { get; set; }

    /// <summary>CSV/TSV column with the completion.</summary>
    public string? CompletionColumn { get; set; }

    /// <summary>Chat format for messages rows (chatml, llama3, …); default: detected from the model folder.</summary>
    public string? ChatTemplate { get; set; }

    /// <summary>Also train on prompt tokens. Default false.</summary>
    public bool? TrainOnPrompt { get; set; }

    /// <summary>Skip bad rows instead of failing. Default false.</summary>
    public bool? SkipBadRows { get; set; }
}
