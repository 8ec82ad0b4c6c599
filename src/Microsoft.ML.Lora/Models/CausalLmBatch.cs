using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// A right-padded batch for a causal LM: input ids (B,T) and next-token targets (B,T), where
/// targets[b,t] is the label of position t+1 (Hugging Face's shift), and −100 marks positions that
/// count for nothing (padding, the last position, labels set to −100).
/// </summary>
public sealed class CausalLmBatch
{
    /// <summary>
    /// Wraps already-shifted arrays of B·T elements. <paramref name="positions"/> (optional, B·T) gives each
    /// token's position within its example, for packed rows: a token at position p attends only to the p
    /// tokens before it (its own example) and is rotated by RoPE as position p. Null means 0…T−1 per row.
    /// </summary>
    public CausalLmBatch(int b, int t, int[] inputIds, int[] targets, int[]? positions = null)
    {
        if (b < 1 || t < 1)
        {
            throw new ArgumentException($"a batch needs at least one row and one token; got B={b}, T={t}");
        }

        if (inputIds.Length != b * t || targets.Length != b * t)
        {
            throw new ArgumentException($"batch arrays must hold B·T = {b * t} elements; got {inputIds.Length} ids and {targets.Length} targets");
        }

        if (positions is not null)
        {
            if (positions.Length != b * t)
            {
                throw new ArgumentException($"positions must hold B·T = {b * t} elements; got {positions.Length}");
            }

            for (int i = 0; i < positions.Length; i++)
            {
                int p = positions[i], col = i % t;
                if (p < 0 || p > col || (p > 0 && positions[i - 1] != p - 1))
                {
                    throw new ArgumentException($"batch row {i / t}, position {col}: position id {p} does not continue its example (expected 0 to start one, or {(col == 0 ? 0 : positions[i - 1] + 1)})");
                }
            }
        }

        B = b;
        T = t;
        InputIds = inputIds;
        Targets = targets;
        Positions = positions;
    }

    /// <summary>Position of each token within its example (B,T), or null for one example per row.</summary>
    public int[]? Positions { get; }

    /// <summary>Sequences.</summary>
    public int B { get; }

    /// <summary>Tokens per sequence (the longest row).</summary>
    public int T { get; }

    /// <summary>Input ids, row-major (B,T).</summary>
    public int[] InputIds { get; }

    /// <summary>Shifted targets, row-major (B,T), −100 where ignored.</summary>
    public int[] Targets { get; }

    /// <summary>Number of targets that are not ignored.</summary>
    public int CountTargets() => Targets.Count(static x => x != CrossEntropy.IgnoreIndex);

    /// <summary>
    /// Builds a batch from rows of token ids with optional per-row labels (same length as the row;
    /// null means labels = input ids, the Hugging Face default). Shorter rows are right-padded with
    /// <paramref name="padId"/>; causal attention means padding never affects earlier positions.
    /// </summary>
    /// <param name="rows">Token ids per row.</param>
    /// <param name="labels">Labels per row, or null per row / for all.</param>
    /// <param name="padId">Id placed in padding positions (never counted).</param>
    /// <param name="firstRowNumber">Number of the first row, for error messages.</param>
    /// <param name="positions">Per row, the positions of a packed row (see <see cref="Positions"/>), or null.</param>
    public static CausalLmBatch FromRows(IReadOnlyList<int[]> rows, IReadOnlyList<int[]?>? labels = null, int padId = 0, int firstRowNumber = 0, IReadOnlyList<int[]?>? positions = null)
    {
        if (rows.Count == 0)
        {
            throw new ArgumentException("a batch needs at least one row", nameof(rows));
        }

        int t = 0;
        for (int r = 0; r < rows.Count; r++)
        {
            if (rows[r].Length == 0)
            {
                throw new ArgumentException($"row {firstRowNumber + r}: input_ids is empty", nameof(rows));
            }

            int[]? l = labels?[r];
            if (l is not null && l.Length != rows[r].Length)
            {
                throw new ArgumentException($"row {firstRowNumber + r}: labels has {l.Length} entries but input_ids has {rows[r].Length}", nameof(labels));
            }

            t = Math.Max(t, rows[r].Length);
        }

        int b = rows.Count;
        var ids = new int[b * t];
        var targets = new int[b * t];
        Array.Fill(ids, padId);
        Array.Fill(targets, CrossEntropy.IgnoreIndex);
        for (int r = 0; r < b; r++)
        {
            int[] row = rows[r];
            int[] lab = labels?[r] ?? row;
            row.CopyTo(ids, r * t);
            for (int i = 0; i + 1 < row.Length; i++)
            {
                targets[(r * t) + i] = lab[i + 1];
            }
        }

        int[]? allPositions = null;
        if (positions is not null && positions.Any(static p => p is not null))
        {
            // Padding after a row's tokens counts as one more example starting at 0.
            allPositions = new int[b * t];
            for (int r = 0; r < b; r++)
            {
                int[]? p = positions[r];
                int len = rows[r].Length;
                if (p is not null && p.Length != len)
                {
                    throw new ArgumentException($"row {firstRowNumber + r}: positions has {p.Length} entries but input_ids has {len}", nameof(positions));
                }

                for (int i = 0; i < t; i++)
                {
                    allPositions[(r * t) + i] = i < len ? (p?[i] ?? i) : i - len;
                }
            }
        }

        return new CausalLmBatch(b, t, ids, targets, allPositions);
    }
}
