namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Hyperparameters of a training run (DESIGN.md §5). Immutable; <see cref="Validate"/> (called by
/// <see cref="Trainer"/>) throws <see cref="ArgumentException"/> naming the option and the value.
/// Applies to whatever parameters are trainable: full fine-tuning or LoRA adapters.
/// </summary>
public sealed record TrainingOptions
{
    /// <summary>
    /// Peak AdamW learning rate. Default 2e-4: the LoRA literature's rate for small models, about 10× a
    /// full fine-tuning rate (use ≈2e-5 for full fine-tuning).
    /// </summary>
    public double LearningRate { get; init; } = 2e-4;

    /// <summary>Decoupled weight decay λ (p ← p − lr·λ·p each step). Default 0, as PEFT/transformers for LoRA.</summary>
    public double WeightDecay { get; init; }

    /// <summary>AdamW β₁, decay of the first moment. Default 0.9 (Kingma &amp; Ba; PyTorch).</summary>
    public double Beta1 { get; init; } = 0.9;

    /// <summary>AdamW β₂, decay of the second moment. Default 0.999 (Kingma &amp; Ba; PyTorch).</summary>
    public double Beta2 { get; init; } = 0.999;

    /// <summary>AdamW ε added to √v̂. Default 1e-8 (PyTorch).</summary>
    public double Epsilon { get; init; } = 1e-8;

    /// <summary>Passes over the training rows. Default 1. Ignored when <see cref="MaxSteps"/> is set.</summary>
    public int Epochs { get; init; } = 1;

    /// <summary>
    /// Optimizer steps of the run; null (default) = <see cref="Epochs"/> × steps per epoch, where steps per
    /// epoch = ⌈⌈rows / <see cref="BatchSize"/>⌉ / <see cref="GradientAccumulationSteps"/>⌉. When set, the
    /// data is cycled (a fresh shuffle per epoch) until that many steps are done.
    /// </summary>
    public int? MaxSteps { get; init; }

    /// <summary>Rows per micro-batch (one forward/backward). Default 4: LoRA degrades at large batches.</summary>
    public int BatchSize { get; init; } = 4;

    /// <summary>
    /// Micro-batches per optimizer step. Default 1. Effective batch = BatchSize × this; gradients are the
    /// token-weighted mean over all micro-batches of the step, exactly as one batch of all their rows.
    /// </summary>
    public int GradientAccumulationSteps { get; init; } = 1;

    /// <summary>Rows longer than this many tokens are truncated to their first tokens. Default 1024; at least 2.</summary>
    public int MaxSequenceLength { get; init; } = 1024;

    /// <summary>Warmup as a fraction of the total steps: W = ⌈ratio × N⌉ (transformers). Default 0.03 (§5: 3–5 %).</summary>
    public double WarmupRatio { get; init; } = 0.03;

    /// <summary>Warmup steps; when set, overrides <see cref="WarmupRatio"/> (capped at the total steps). Default null.</summary>
    public int? WarmupSteps { get; init; }

    /// <summary>Learning rate after warmup. Default Linear (transformers' default), decaying to 0 at the last step.</summary>
    public LearningRateScheduleKind Schedule { get; init; } = LearningRateScheduleKind.Linear;

    /// <summary>
    /// Global L2 norm the gradients are clipped to (g ← g·max/‖g‖ when ‖g‖ &gt; max). Default 1.0
    /// (transformers); 0 disables clipping (the norm is still computed and reported).
    /// </summary>
    public double MaxGradNorm { get; init; } = 1.0;

    /// <summary>Seed of the data order, the validation split and the dropout masks. Default 42.</summary>
    public int Seed { get; init; } = 42;

    /// <summary>Shuffle the training rows each epoch (seeded by <see cref="Seed"/> and the epoch). Default true.</summary>
    public bool Shuffle { get; init; } = true;

    /// <summary>
    /// Pack the training examples, in file order, into rows of <see cref="MaxSequenceLength"/> tokens before
    /// batching (as TRL's packing does): <see cref="BatchSize"/> then counts packed rows, each example keeps its
    /// own positions and attends only to itself, and no target crosses an example boundary. Default false
    /// (one example per row, right-padded). Validation rows are never packed.
    /// </summary>
    public bool Packing { get; init; }

    /// <summary>
    /// Fraction of the training rows held out (seeded) for validation when no validation set is passed
    /// to <c>Trainer.Train</c>. Default 0 = none. In [0, 1).
    /// </summary>
    public double ValidationFraction { get; init; }

    /// <summary>Evaluate the validation rows every this many optimizer steps; 0 (default) = at the end of each epoch. Always also at the end.</summary>
    public int EvalEverySteps { get; init; }

    /// <summary>Write a checkpoint every this many optimizer steps; 0 (default) = never. Needs <see cref="CheckpointDirectory"/>.</summary>
    public int CheckpointEverySteps { get; init; }

    /// <summary>Folder that receives <c>checkpoint-&lt;step&gt;</c> folders. Default null.</summary>
    public string? CheckpointDirectory { get; init; }

    /// <summary>Path of a <c>metrics.jsonl</c> log (one JSON object per step and per evaluation, appended). Default null = none.</summary>
    public string? MetricsPath { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option and its value.</summary>
    /// <summary>
    /// Direct preference optimization instead of supervised fine-tuning: every row must be a preference pair
    /// (<see cref="DirectPreference.TrainingRow"/>), a step's loss is the mean preference loss of its pairs (the
    /// reference is the model with its adapters disabled), <see cref="BatchSize"/> counts pairs and validation reports
    /// the preference loss. Null (default) trains on the rows' token loss.
    /// </summary>
    public PreferenceOptions? Preference { get; init; }

    /// <summary>
    /// Group relative policy optimization instead of supervised fine-tuning: every row is a prompt; each step samples
    /// <see cref="GrpoOptions.GroupSize"/> completions per prompt with the current adapter, scores them with the reward
    /// given to <see cref="Trainer.Train(IReadOnlyList{TokenRow}, GrpoReward, Text.ITextTokenizer, IReadOnlyList{TokenRow}?, IProgress{TrainingProgress}?, CancellationToken)"/>
    /// and takes <see cref="GrpoOptions.Iterations"/> optimizer steps on the clipped objective. <see cref="BatchSize"/>
    /// counts prompts; validation rows are held-out prompts whose mean reward is reported. Null (default) trains on the
    /// rows' token loss.
    /// </summary>
    public GrpoOptions? Grpo { get; init; }

    public void Validate()
    {
        Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "a finite number > 0 (e.g. 2e-4 for LoRA, 2e-5 for full fine-tuning)");
        Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "a finite number ≥ 0");
        Require(Beta1 >= 0 && Beta1 < 1, nameof(Beta1), Beta1, "in [0, 1)");
        Require(Beta2 >= 0 && Beta2 < 1, nameof(Beta2), Beta2, "in [0, 1)");
        Require(double.IsFinite(Epsilon) && Epsilon > 0, nameof(Epsilon), Epsilon, "a finite number > 0");
        Require(Epochs is >= 1 and <= 1_000_000, nameof(Epochs), Epochs, "1 … 1,000,000");
        Require(MaxSteps is null || MaxSteps >= 1, nameof(MaxSteps), MaxSteps, "null or at least 1");
        Require(BatchSize is >= 1 and <= 1 << 16, nameof(BatchSize), BatchSize, "1 … 65,536 rows");
        Require(GradientAccumulationSteps is >= 1 and <= 1 << 16, nameof(GradientAccumulationSteps), GradientAccumulationSteps, "1 … 65,536");
        Require(MaxSequenceLength is >= 2 and <= 1 << 24, nameof(MaxSequenceLength), MaxSequenceLength, "2 (one input and one target token) … 16,777,216");
        Require((long)BatchSize * MaxSequenceLength <= int.MaxValue, nameof(BatchSize), BatchSize, $"a micro-batch of at most 2^31 − 1 tokens (with MaxSequenceLength {MaxSequenceLength})");
        Require(WarmupRatio >= 0 && WarmupRatio <= 1, nameof(WarmupRatio), WarmupRatio, "in [0, 1]");
        Require(WarmupSteps is null || WarmupSteps >= 0, nameof(WarmupSteps), WarmupSteps, "null or ≥ 0");
        Require(Enum.IsDefined(Schedule), nameof(Schedule), Schedule, "Constant, Linear or Cosine");
        Require(double.IsFinite(MaxGradNorm) && MaxGradNorm >= 0, nameof(MaxGradNorm), MaxGradNorm, "a finite number ≥ 0 (0 disables clipping)");
        Require(ValidationFraction >= 0 && ValidationFraction < 1, nameof(ValidationFraction), ValidationFraction, "in [0, 1)");
        Require(EvalEverySteps >= 0, nameof(EvalEverySteps), EvalEverySteps, "≥ 0 (0 = at the end of each epoch)");
        Require(CheckpointEverySteps >= 0, nameof(CheckpointEverySteps), CheckpointEverySteps, "≥ 0 (0 = no checkpoints)");
        Require(CheckpointEverySteps == 0 || !string.IsNullOrWhiteSpace(CheckpointDirectory), nameof(CheckpointDirectory), CheckpointDirectory, $"a folder path because CheckpointEverySteps = {CheckpointEverySteps}");
        Require(MetricsPath is null || !string.IsNullOrWhiteSpace(MetricsPath), nameof(MetricsPath), MetricsPath, "null or a file path");
        Require(Preference is null || !Packing, nameof(Packing), Packing, "false with Preference: a preference pair is two rows scored apart, never packed");
        Preference?.Validate();
        Require(Grpo is null || (Preference is null && !Packing), nameof(Grpo), Grpo, "alone: GRPO samples its own completions, so no Preference or Packing");
        Grpo?.Validate();
    }

    private static void Require(bool ok, string option, object? value, string expected)
    {
        if (!ok)
        {
            string shown = value switch
            {
                null => "null",
                string s => $"'{s}'",
                double d => d.ToString("R", System.Globalization.CultureInfo.InvariantCulture),
                _ => Convert.ToString(value, System.Globalization.CultureInfo.InvariantCulture) ?? "?",
            };
            throw new ArgumentException($"TrainingOptions.{option} = {shown} is invalid: expected {expected}", option);
        }
    }
}
