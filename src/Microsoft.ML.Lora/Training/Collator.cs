using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Training;

/// <summary>Builds <see cref="CausalLmBatch"/>es from tokenized rows: packed, or one example per row right-padded.</summary>
public static class Collator
{
    /// <summary>Stacks packed rows (all of one length T) into a batch (B,T) with positions.</summary>
    public static CausalLmBatch Packed(IReadOnlyList<PackedSequence> sequences)
    {
        ArgumentNullException.ThrowIfNull(sequences);
        if (sequences.Count == 0)
        {
            throw new ArgumentException("a batch needs at least one packed row", nameof(sequences));
        }

        int b = sequences.Count, t = sequences[0].InputIds.Length;
        var ids = new int[b * t];
        var targets = new int[b * t];
        var positions = new int[b * t];
        for (int r = 0; r < b; r++)
        {
            var s = sequences[r];
            if (s.InputIds.Length != t)
            {
                throw new ArgumentException($"packed row {r} has {s.InputIds.Length} tokens but row 0 has {t}; pack every row with one sequence length", nameof(sequences));
            }

            s.InputIds.CopyTo(ids, r * t);
            s.Targets.CopyTo(targets, r * t);
            s.Positions.CopyTo(positions, r * t);
        }

        return new CausalLmBatch(b, t, ids, targets, positions);
    }

    /// <summary>
    /// Packs <paramref name="examples"/> (see <see cref="SequencePacker"/>) and groups the rows into batches of
    /// <paramref name="batchSize"/> (the last may be smaller). Lazy: examples are read as batches are taken.
    /// </summary>
    public static IEnumerable<CausalLmBatch> PackedBatches(IEnumerable<TokenRow> examples, int sequenceLength, int batchSize, int padId = 0, PackingStats? stats = null)
    {
        if (batchSize < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(batchSize), batchSize, "batch size must be at least 1");
        }

        return SequencePacker.Pack(examples, sequenceLength, padId, stats).Chunk(batchSize).Select(static c => Packed(c));
    }

    /// <summary>
    /// One example per row, right-padded with <paramref name="padId"/> to the longest row (T), rows longer
    /// than <paramref name="maxLength"/> cut to their first tokens. No attention mask is needed: attention is
    /// causal, so a real token never sees the padding after it, and padding targets are −100.
    /// </summary>
    public static CausalLmBatch Padded(IReadOnlyList<TokenRow> rows, int padId = 0, int? maxLength = null)
    {
        ArgumentNullException.ThrowIfNull(rows);
        if (maxLength is < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(maxLength), maxLength, "maxLength must be at least 2 (one input and one target)");
        }

        if (padId < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(padId), padId, "the padding id must be a vocabulary id (0 or more)");
        }

        int cut = maxLength ?? int.MaxValue;
        var ids = new List<int[]>(rows.Count);
        var labels = new List<int[]?>(rows.Count);
        foreach (var row in rows)
        {
            ArgumentNullException.ThrowIfNull(row, nameof(rows));
            if (row.Labels is not null && row.Labels.Length != row.InputIds.Length)
            {
                throw new ArgumentException($"row at line {row.Line}: labels has {row.Labels.Length} entries but input_ids has {row.InputIds.Length}", nameof(rows));
            }

            int n = Math.Min(row.InputIds.Length, cut);
            ids.Add(row.InputIds[..n]);
            labels.Add(row.Labels?[..n]);
        }

        return CausalLmBatch.FromRows(ids, labels, padId);
    }
}
