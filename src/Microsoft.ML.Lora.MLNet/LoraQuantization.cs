namespace Microsoft.ML.Lora.MLNet;

/// <summary>How the frozen base weights are stored while an adapter trains on them.</summary>
public enum LoraQuantization
{
    /// <summary>Base weights in the options' DType (LoRA).</summary>
    None,

    /// <summary>Decoder Linear weights as NF4, block 64 (QLoRA).</summary>
    Nf4,

    /// <summary>NF4 with the block constants quantized again (QLoRA's double quantization).</summary>
    Nf4DoubleQuant,
}
