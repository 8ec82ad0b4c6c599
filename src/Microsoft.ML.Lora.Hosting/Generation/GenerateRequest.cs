namespace Microsoft.ML.Lora.Hosting.Generation;

/// <summary>The body of <c>POST /generate</c>.</summary>
public sealed class GenerateRequest
{
    /// <summary>Base model folder under the model root; optional when <see cref="Adapter"/> is set (the job's base is used).</summary>
    public string? Model { get; set; }

    /// <summary>Id of a succeeded job whose adapter to apply; null = the base model alone.</summary>
    public string? Adapter { get; set; }

    /// <summary>Prompt text (encoded with the model's tokenizer, special tokens added).</summary>
    public string? Prompt { get; set; }

    /// <summary>Tokens to generate at most. Default 64.</summary>
    public int? MaxNewTokens { get; set; }

    /// <summary>0 (default) = greedy.</summary>
    public double? Temperature { get; set; }

    /// <summary>Sampler seed. Default 0.</summary>
    public int? Seed { get; set; }
}

/// <summary>The answer of <c>POST /generate</c>.</summary>
/// <param name="Text">The generated text (special tokens skipped).</param>
/// <param name="Tokens">The generated token ids, the stop token included when one was produced.</param>
/// <param name="Adapter">The adapter applied, or null.</param>
public sealed record GenerateResponse(string Text, IReadOnlyList<int> Tokens, string? Adapter);
