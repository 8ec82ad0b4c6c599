namespace Microsoft.ML.Lora.Models;

/// <summary>Summed token cross-entropy and the number of tokens it covers.</summary>
/// <param name="Sum">Σ of per-token losses (nats).</param>
/// <param name="Tokens">Tokens counted (targets not −100).</param>
public readonly record struct LossResult(double Sum, long Tokens)
{
    /// <summary>Mean token cross-entropy; NaN when no token counted.</summary>
    public double Mean => Tokens == 0 ? double.NaN : Sum / Tokens;

    /// <summary>Adds two results (for evaluation over many batches).</summary>
    public static LossResult operator +(LossResult a, LossResult b) => new(a.Sum + b.Sum, a.Tokens + b.Tokens);
}
