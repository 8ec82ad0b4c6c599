using System.Text.Json;
using System.Text.Json.Serialization;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What a LoRA transformer needs besides its adapter to score again: the task, the base model, how its
/// weights are stored, the columns and the prediction settings. Saved next to the PEFT files as
/// <see cref="FileName"/> by <c>SaveAdapter</c> and read by the transformers' <c>Load</c>.
/// </summary>
internal sealed record StepSettings
{
    public const string FileName = "lora_mlnet.json";

    public const string TextClassification = "text-classification";
    public const string TextRegression = "text-regression";
    public const string CausalLm = "causal-lm";

    private static readonly JsonSerializerOptions Json = new()
    {
        WriteIndented = true,
        PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower,
        Converters = { new JsonStringEnumConverter() },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    /// <summary><see cref="TextClassification"/>, <see cref="TextRegression"/> or <see cref="CausalLm"/>.</summary>
    public string Task { get; init; } = "";

    /// <summary>The base model folder, as a full path.</summary>
    public string ModelPath { get; init; } = "";

    public DType DType { get; init; } = DType.F32;

    public LoraQuantization Quantization { get; init; } = LoraQuantization.None;

    public int MaxSequenceLength { get; init; } = 512;

    /// <summary>The text columns read: Sentence1 (and Sentence2), or the prompt.</summary>
    public string[] InputColumns { get; init; } = [];

    /// <summary>The Score column, or the generated-text column of a causal LM.</summary>
    public string OutputColumn { get; init; } = "";

    /// <summary>The PredictedLabel column of a classifier, else null.</summary>
    public string? PredictedLabelColumn { get; init; }

    /// <summary>Rows per forward pass (scoring), or prompts generated together (causal LM).</summary>
    public int BatchSize { get; init; } = 32;

    /// <summary>The causal LM's generation settings, else null.</summary>
    public GenerationSettings? Generation { get; init; }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The settings saved in <paramref name="adapterDirectory"/>, or null when it has none (a PEFT folder saved elsewhere).</summary>
    /// <exception cref="InvalidDataException">The file is malformed or belongs to another task.</exception>
    public static StepSettings? Read(string adapterDirectory, string task)
    {
        string path = Path.GetFullPath(Path.Combine(adapterDirectory, FileName));
        if (!File.Exists(path))
        {
            return null;
        }

        StepSettings settings;
        try
        {
            settings = JsonSerializer.Deserialize<StepSettings>(File.ReadAllBytes(path), Json) ?? throw new InvalidDataException($"{path}: empty settings");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path}: not valid LoRA step settings ({e.Message})", e);
        }

        if (settings.Task != task)
        {
            throw new InvalidDataException($"{path}: the adapter was saved by a '{settings.Task}' step; this transformer loads '{task}' adapters");
        }

        if (settings.InputColumns.Length is < 1 or > 2 || settings.InputColumns.Any(string.IsNullOrWhiteSpace) || string.IsNullOrWhiteSpace(settings.OutputColumn) || settings.BatchSize < 1 || settings.MaxSequenceLength < 2)
        {
            throw new InvalidDataException($"{path}: columns, batch size or max_sequence_length missing or out of range");
        }

        return settings;
    }
}

/// <summary>How a causal-LM transformer generates (see <see cref="Models.GenerationOptions"/>).</summary>
internal sealed record GenerationSettings(int MaxNewTokens, double Temperature, int TopK, double TopP, int Seed);
