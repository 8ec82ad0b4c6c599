namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// Per-pass state shared by every adapter of a model: whether this pass trains (dropout on) and the
/// seed of its dropout masks. The model sets it before each forward pass.
/// </summary>
public sealed class LoraRuntime
{
    /// <summary>Training pass: dropout active, activations kept for Backward.</summary>
    public bool Training { get; set; }

    /// <summary>Seed of this pass's dropout masks; a mask element depends only on (seed, adapter, element).</summary>
    public ulong DropoutSeed { get; set; }
}
