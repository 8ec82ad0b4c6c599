namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>Settings of a <see cref="TorchBackend"/>.</summary>
public sealed record TorchBackendOptions
{
    /// <summary>
    /// Run matrix products in BF16 (inputs rounded to BF16, F32 accumulation inside libtorch, F32
    /// results), as <c>torch.autocast(dtype=torch.bfloat16)</c> does for linear layers. Norms, softmax,
    /// losses, LoRA parameters and optimizer state stay F32. Default false.
    /// </summary>
    public bool Bf16Compute { get; init; }
}
