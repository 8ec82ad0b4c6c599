using System.Globalization;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Lora;

/// <summary>A recommendation of LoRA hyper-parameters, each with the reason for it.</summary>
/// <param name="Rank">r.</param>
/// <param name="Alpha">α.</param>
/// <param name="LearningRate">Peak learning rate.</param>
/// <param name="BatchSize">Sequences per optimizer step.</param>
/// <param name="Epochs">Passes over the data.</param>
/// <param name="WarmupRatio">Fraction of steps spent warming up.</param>
/// <param name="Targets">Target modules.</param>
/// <param name="AdapterParameters">Trainable parameters at this rank.</param>
/// <param name="Reasons">One line per choice.</param>
public sealed record LoraAdvice(int Rank, double Alpha, double LearningRate, int BatchSize, int Epochs, double WarmupRatio, string Targets, long AdapterParameters, IReadOnlyList<string> Reasons);

/// <summary>
/// Recommends LoRA settings from the model shape and the data size, following published findings:
/// adapter capacity should exceed the information in the data (LoRA matches full fine-tuning until
/// it runs out of capacity; Schulman et al., "LoRA Without Regret", 2025), a network stores about
/// 2 bits per parameter (Allen-Zhu and Li, "Physics of Language Models 3.3", 2024), supervised
/// data carries at most about 1 bit of new information per trained token, the best LoRA learning
/// rate is about 10× the full fine-tuning one, attention-only adapters learn less than all-linear
/// ones, and LoRA tolerates large batches worse than full fine-tuning.
/// </summary>
public static class LoraAdvisor
{
    /// <summary>Bits a trained parameter stores (Allen-Zhu and Li, 2024).</summary>
    public const double BitsPerParameter = 2.0;

    /// <summary>Upper bound on new information per trained token of supervised data (bits).</summary>
    public const double BitsPerToken = 1.0;

    private const int MinRank = 8;
    private const int MaxRank = 256;

    /// <summary>Advice for <paramref name="config"/> and a data set of <paramref name="rows"/> rows holding <paramref name="trainedTokens"/> counted tokens.</summary>
    public static LoraAdvice Advise(LlamaConfig config, long rows, long trainedTokens)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (rows < 1 || trainedTokens < 1)
        {
            throw new ArgumentException($"the data set needs at least one row and one trained token; got {rows} rows, {trainedTokens} tokens");
        }

        var reasons = new List<string>();
        long perRank = ParametersPerRank(config);
        double infoBits = trainedTokens * BitsPerToken;
        long needed = (long)Math.Ceiling(infoBits / BitsPerParameter / perRank);
        int rank = MinRank;
        while (rank < needed && rank < MaxRank)
        {
            rank *= 2;
        }

        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        reasons.Add(I($"rank {rank}: {trainedTokens:N0} trained tokens carry at most ~{infoBits:N0} bits; at ~{BitsPerParameter} bits per parameter the adapter needs ≥ {infoBits / BitsPerParameter:N0} parameters, and each unit of rank adds {perRank:N0} (all linear layers), so r ≥ {Math.Max(needed, 1)}; rounded up to a power of two, at least {MinRank}."));
        if (needed > MaxRank)
        {
            reasons.Add(I($"the data needs rank > {MaxRank}: consider full fine-tuning (--full), which has the capacity LoRA lacks here."));
        }

        reasons.Add("alpha 32: with s = α/r the update size at the start does not depend on r, so the learning rate below transfers across ranks.");
        double lr = Math.Clamp(2e-4 * Math.Sqrt(2048.0 / config.HiddenSize), 5e-5, 1e-3);
        reasons.Add(I($"learning rate {lr:G2}: LoRA's best rate is ~10× full fine-tuning's; 2e-4 is the usual LoRA rate at hidden size 2048, scaled by √(2048 / {config.HiddenSize}) since wider models want smaller steps, kept within [5e-5, 1e-3]."));
        int batch = (int)Math.Clamp(rows / 20, 1, 16);
        reasons.Add(I($"batch size {batch}: moderate batches (≤ 16 sequences) because LoRA degrades at large batch sizes; at most rows/20 so an epoch has ≥ 20 optimizer steps."));
        int epochs = trainedTokens < 1_000_000 ? 3 : 1;
        reasons.Add(epochs == 3
            ? "3 epochs: under a million trained tokens, a few passes are needed; watch validation loss for overfitting."
            : "1 epoch: with a million or more trained tokens one pass avoids memorising the data.");
        reasons.Add("warmup 3% then cosine decay: a short warmup keeps the first updates of a zero-initialised B stable.");
        reasons.Add("targets all-linear: adapting the MLP as well as attention learns more per parameter than attention-only LoRA.");
        return new LoraAdvice(rank, 32, lr, batch, epochs, 0.03, LoraOptions.AllLinear, perRank * rank, reasons);
    }

    /// <summary>
    /// Advice for preference or reinforcement-style fine-tuning (DPO) on <paramref name="pairs"/> pairs. Such data teach
    /// little new information (about one bit per pair or episode, the label of which reply is better), so LoRA at rank
    /// 1–8 matches full fine-tuning there ("LoRA Without Regret", 2025): rank is the smallest power of two, up to 8, whose
    /// capacity holds those bits. The learning rate is ~10× full fine-tuning's DPO rate (5e-7 at hidden size 4096,
    /// as Zephyr and Tülu used), scaled by √(4096 / hidden); β 0.1 (the DPO paper's and TRL's default).
    /// </summary>
    public static LoraAdvice AdvisePreference(LlamaConfig config, long pairs)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (pairs < 1)
        {
            throw new ArgumentException($"the data set needs at least one preference pair; got {pairs}");
        }

        string I(FormattableString s) => s.ToString(CultureInfo.InvariantCulture);
        long perRank = ParametersPerRank(config);
        long needed = (long)Math.Ceiling(pairs * BitsPerToken / BitsPerParameter / perRank);
        int rank = 1;
        while (rank < needed && rank < 8)
        {
            rank *= 2;
        }

        double lr = Math.Clamp(10 * 5e-7 * Math.Sqrt(4096.0 / config.HiddenSize), 1e-6, 1e-4);
        int batch = (int)Math.Clamp(pairs / 20, 1, 16);
        var reasons = new List<string>
        {
            I($"rank {rank}: {pairs:N0} pairs carry about {pairs:N0} bits (one per pair: which reply is better); rank 1 already holds {perRank * 2:N0} bits at ~{BitsPerParameter} bits per parameter. Preference and RL fine-tuning need little capacity, so LoRA at rank 1–8 matches full fine-tuning there (Schulman et al., \"LoRA Without Regret\", 2025)."),
            I($"alpha {2 * rank}: s = α/r = 2, so the start does not depend on r."),
            I($"learning rate {lr:G2}: LoRA's best rate is ~10× full fine-tuning's; full-parameter DPO uses ~5e-7 at hidden size 4096 (Zephyr, Tülu 2), scaled by √(4096 / {config.HiddenSize}). With few pairs and steps, raise it until the training reward accuracy climbs."),
            "beta 0.1: DPO's default strength of the pull toward the reference (the base without the adapter); larger keeps the model closer to it.",
            I($"batch size {batch} pairs: at most pairs/20 so an epoch has ≥ 20 optimizer steps, and ≤ 16."),
            "1 epoch: preference data are easy to overfit; watch the validation reward accuracy and margin (metrics.jsonl).",
            "targets all-linear: as for supervised LoRA, adapting the MLP as well as attention learns more per parameter.",
        };
        return new LoraAdvice(rank, 2 * rank, lr, batch, 1, 0.1, LoraOptions.AllLinear, perRank * rank, reasons);
    }

    /// <summary>LoRA parameters per unit of rank with all-linear targets: Σ (d_in + d_out) over every adapted Linear.</summary>
    public static long ParametersPerRank(LlamaConfig config)
    {
        long c = config.HiddenSize, q = (long)config.NumAttentionHeads * config.HeadDim, kv = (long)config.NumKeyValueHeads * config.HeadDim, inter = config.IntermediateSize;
        long perLayer = (c + q) + (c + kv) + (c + kv) + (q + c) + (3 * (c + inter));
        return perLayer * config.NumHiddenLayers;
    }
}
