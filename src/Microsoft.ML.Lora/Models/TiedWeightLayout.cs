namespace Microsoft.ML.Lora.Models;

/// <summary>
/// How a checkpoint stores the one matrix of a tied model (the input embedding that is also the output head).
/// transformers' <c>save_pretrained</c> writes it as <see cref="EmbeddingName"/>; some published checkpoints hold it
/// only as <see cref="HeadName"/>; <c>safetensors.torch.save_model</c> also names the dropped twin in the file's
/// metadata (<c>{"lm_head.weight": "model.embed_tokens.weight"}</c>).
/// </summary>
/// <param name="StoredName">The tensor name the matrix is stored under.</param>
/// <param name="AliasName">The other name, when the metadata maps it to <paramref name="StoredName"/>; else null.</param>
public sealed record TiedWeightLayout(string StoredName, string? AliasName)
{
    /// <summary>The embedding's name, <c>model.embed_tokens.weight</c>.</summary>
    public const string EmbeddingName = "model.embed_tokens.weight";

    /// <summary>The output head's name, <c>lm_head.weight</c>.</summary>
    public const string HeadName = "lm_head.weight";

    /// <summary>The safetensors metadata this layout writes (the alias entry, or none).</summary>
    public IReadOnlyDictionary<string, string> Metadata =>
        AliasName is null ? new Dictionary<string, string>() : new Dictionary<string, string> { [AliasName] = StoredName };
}
