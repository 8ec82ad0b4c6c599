using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What every LoRA trainer is configured with, in the shape of ML.NET's trainer options (public fields with
/// defaults): the base model and how its frozen weights are stored, the adapter, the training run and the
/// device. The trainers copy the options when they are made, so changing an instance afterwards does not
/// change a trainer. The seed comes from the <c>MLContext</c> (<c>new MLContext(seed: …)</c>).
/// </summary>
public abstract class LoraTrainerOptions
{
    /// <summary>
    /// Hugging Face model folder (config.json, safetensors, tokenizer.json). Required. The classification and
    /// regression trainers accept a causal LM (a new <c>score</c> head is added, as transformers'
    /// <c>AutoModelForSequenceClassification</c> does) or a sequence classifier of the right width.
    /// </summary>
    public string ModelPath = "";

    /// <summary>Rows per micro-batch (one forward/backward). Default 32, as ML.NET's TorchSharp trainers.</summary>
    public int BatchSize = 32;

    /// <summary>Passes over the training data. Default 10, as ML.NET's TorchSharp trainers.</summary>
    public int MaxEpochs = 10;

    /// <summary>Optimizer steps of the run; null (default) = MaxEpochs passes. When set, the data is cycled until that many steps are done.</summary>
    public int? MaxSteps;

    /// <summary>Rows evaluated at the end of each epoch (and after the last step); their loss goes to the log and to the transformer's TrainingMetrics. Same columns as the training data. Default null.</summary>
    public IDataView? ValidationSet;

    /// <summary>Peak AdamW learning rate. Default 2e-4, the LoRA literature's rate for small models (about 10× a full fine-tuning rate).</summary>
    public double LearningRate = 2e-4;

    /// <summary>Warmup as a fraction of the steps (linear decay to 0 afterwards, as transformers). Default 0.03.</summary>
    public double WarmupRatio = 0.03;

    /// <summary>AdamW decoupled weight decay. Default 0, as PEFT for LoRA.</summary>
    public double WeightDecay;

    /// <summary>Micro-batches per optimizer step (effective batch = BatchSize × this). Default 1.</summary>
    public int GradientAccumulationSteps = 1;

    /// <summary>LoRA rank r. Default 8.</summary>
    public int Rank = 8;

    /// <summary>LoRA α: the adapter's output is scaled by α/r. Default 32.</summary>
    public double Alpha = 32;

    /// <summary>Dropout on each adapter's input during training, in [0, 1). Default 0.</summary>
    public double Dropout;

    /// <summary>
    /// Modules to adapt, matched as PEFT matches them (<c>q_proj</c>, <c>self_attn.v_proj</c>, …); null (default)
    /// adapts every Linear of attention and MLP. A classifier's or regressor's <c>score</c> head always trains fully.
    /// </summary>
    public string[]? TargetModules;

    /// <summary>None (default) = LoRA; Nf4 or Nf4DoubleQuant = QLoRA (decoder weights stored as NF4).</summary>
    public LoraQuantization Quantization = LoraQuantization.None;

    /// <summary>Storage of the frozen base weights when Quantization is None: F32 (default) or BF16 (half the memory).</summary>
    public DType DType = DType.F32;

    /// <summary>Texts are cut to their first this many tokens, in training and prediction. Default 512.</summary>
    public int MaxSequenceLength = 512;

    /// <summary>
    /// Where the model trains and predicts: "cpu" (the native engine), "cuda" or "cuda:N" (libtorch through
    /// TorchSharp; the app references a TorchSharp CUDA package). Null (default): "cuda:N" when
    /// <c>MLContext.GpuDeviceId</c> is N, else "cpu".
    /// </summary>
    public string? Device;

    /// <summary>
    /// When the device is a GPU that cannot be used (no CUDA package or device), train on the CPU instead and
    /// log a warning, rather than throw. Null (default): <c>MLContext.FallbackToCpu</c>.
    /// </summary>
    public bool? FallbackToCpu;

    /// <summary>Receives one report per optimizer step during Fit, for callers who want objects rather than log lines. Default null.</summary>
    public IProgress<TrainingProgress>? Progress;

    /// <summary>
    /// Cancels Fit (checked before every micro-batch and while reading rows); Fit then throws
    /// <see cref="OperationCanceledException"/>. ML.NET's own cancellation (what AutoML uses) is honoured too.
    /// </summary>
    public CancellationToken CancellationToken;

    /// <summary>A shallow copy (the trainer's own; the arrays are copied too).</summary>
    internal LoraTrainerOptions Snapshot()
    {
        var copy = (LoraTrainerOptions)MemberwiseClone();
        copy.TargetModules = TargetModules?.ToArray();
        return copy;
    }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option (Owner.Option) and its value.</summary>
    internal virtual void Validate()
    {
        RequireText(nameof(ModelPath), ModelPath, "a Hugging Face model folder (config.json, safetensors, tokenizer.json)");
        Require(BatchSize >= 1, nameof(BatchSize), BatchSize, "at least 1");
        Require(MaxEpochs >= 1, nameof(MaxEpochs), MaxEpochs, "at least 1");
        Require(MaxSteps is null or >= 1, nameof(MaxSteps), MaxSteps, "null or at least 1");
        Require(double.IsFinite(LearningRate) && LearningRate > 0, nameof(LearningRate), LearningRate, "a finite number > 0 (e.g. 2e-4)");
        Require(WarmupRatio is >= 0 and <= 1, nameof(WarmupRatio), WarmupRatio, "in [0, 1]");
        Require(double.IsFinite(WeightDecay) && WeightDecay >= 0, nameof(WeightDecay), WeightDecay, "a finite number ≥ 0");
        Require(GradientAccumulationSteps >= 1, nameof(GradientAccumulationSteps), GradientAccumulationSteps, "at least 1");
        Require(Rank >= 1, nameof(Rank), Rank, "at least 1");
        Require(double.IsFinite(Alpha) && Alpha > 0, nameof(Alpha), Alpha, "a finite number > 0");
        Require(Dropout is >= 0 and < 1, nameof(Dropout), Dropout, "in [0, 1)");
        Require(TargetModules is null || (TargetModules.Length > 0 && TargetModules.All(static t => !string.IsNullOrWhiteSpace(t))), nameof(TargetModules), TargetModules is null ? null : $"[{string.Join(", ", TargetModules)}]", "null (every Linear) or non-empty module names");
        Require(Enum.IsDefined(Quantization), nameof(Quantization), Quantization, "None, Nf4 or Nf4DoubleQuant");
        Require(DType is DType.F32 or DType.BF16, nameof(DType), DType, "F32 or BF16 (NF4 is chosen with Quantization)");
        Require(MaxSequenceLength >= 2, nameof(MaxSequenceLength), MaxSequenceLength, "at least 2");
        Require(Device is null || !string.IsNullOrWhiteSpace(Device), nameof(Device), Device, "null, \"cpu\", \"cuda\" or \"cuda:N\"");
    }

    /// <summary>The adapter these options describe.</summary>
    internal LoraOptions ToLoraOptions() => new()
    {
        Rank = Rank,
        Alpha = Alpha,
        Dropout = Dropout,
        TargetModules = TargetModules is null ? [LoraOptions.AllLinear] : TargetModules,
    };

    /// <summary>The engine's training run for these options and <paramref name="seed"/> (from the MLContext).</summary>
    internal TrainingOptions ToTrainingOptions(int seed) => new()
    {
        LearningRate = LearningRate,
        WeightDecay = WeightDecay,
        Epochs = MaxEpochs,
        MaxSteps = MaxSteps,
        BatchSize = BatchSize,
        GradientAccumulationSteps = GradientAccumulationSteps,
        MaxSequenceLength = MaxSequenceLength,
        WarmupRatio = WarmupRatio,
        Seed = seed,
    };

    /// <summary>Throws when the column-name option <paramref name="option"/> is empty.</summary>
    private protected void RequireText(string option, string? value, string expected)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            throw new ArgumentException($"{Owner}.{option} is {(value is null ? "null" : "empty")}; expected {expected}", option);
        }
    }

    /// <summary>Throws naming <paramref name="option"/> and <paramref name="value"/> unless <paramref name="ok"/>.</summary>
    private protected void Require(bool ok, string option, object? value, string expected)
    {
        if (!ok)
        {
            string shown = value switch
            {
                null => "null",
                string s => $"'{s}'",
                double d => d.ToString("R", CultureInfo.InvariantCulture),
                _ => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "?",
            };
            throw new ArgumentException($"{Owner}.{option} = {shown} is invalid: expected {expected}", option);
        }
    }

    // "LoraTextClassificationTrainer.Options": the nested class's full name as a user writes it.
    private string Owner => GetType().DeclaringType is { } trainer ? $"{trainer.Name}.Options" : GetType().Name;
}
