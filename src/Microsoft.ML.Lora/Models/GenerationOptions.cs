namespace Microsoft.ML.Lora.Models;

/// <summary>How <see cref="Generator"/> picks tokens. Immutable; values are checked when set.</summary>
public sealed record GenerationOptions
{
    /// <summary>The most <see cref="MaxNewTokens"/> allowed (2^24).</summary>
    public const int MaxTokens = 1 << 24;

    private readonly int maxNewTokens = 128;
    private readonly double temperature;
    private readonly int topK;
    private readonly double topP = 1;

    /// <summary>Tokens to generate at most, 1 … 2^24. Default 128. The prompt and these must fit the model's max_position_embeddings.</summary>
    public int MaxNewTokens
    {
        get => maxNewTokens;
        init => maxNewTokens = value is >= 1 and <= MaxTokens ? value : throw new ArgumentOutOfRangeException(nameof(MaxNewTokens), value, $"max new tokens must be 1 … {MaxTokens}");
    }

    /// <summary>0 (default): greedy (argmax). Otherwise logits are divided by it before sampling.</summary>
    public double Temperature
    {
        get => temperature;
        init => temperature = value >= 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Temperature), value, "temperature must be ≥ 0 (0 = greedy)");
    }

    /// <summary>Sample among the k most likely tokens only; 0 (default) = no limit.</summary>
    public int TopK
    {
        get => topK;
        init => topK = value >= 0 ? value : throw new ArgumentOutOfRangeException(nameof(TopK), value, "top-k must be ≥ 0 (0 = off)");
    }

    /// <summary>Nucleus sampling: the smallest set of most likely tokens whose probability reaches p; 1 (default) = off.</summary>
    public double TopP
    {
        get => topP;
        init => topP = value > 0 && value <= 1 ? value : throw new ArgumentOutOfRangeException(nameof(TopP), value, "top-p must be in (0, 1]");
    }

    /// <summary>Seed of the sampler; the same seed, prompt and options give the same tokens.</summary>
    public int Seed { get; init; }

    /// <summary>Generation stops after any of these tokens (the stop token is returned). Usually the EOS id.</summary>
    public IReadOnlyList<int> StopTokenIds { get; init; } = [];

    /// <summary>Reuse keys and values of earlier tokens (default). False recomputes the whole sequence per token.</summary>
    public bool UseCache { get; init; } = true;
}
