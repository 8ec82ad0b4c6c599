using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Packs tokenized examples into rows of exactly T tokens so that no compute goes to padding.
/// </summary>
/// <remarks>
/// Greedy and in order (next-fit): examples are appended to the current row while they fit; the first that
/// does not fit closes the row (the rest is padded) and starts the next. Order is kept so that the
/// trainer's shuffle and resumes mean the same thing, at the cost of at most one example's worth of
/// padding per row. An example longer than T is truncated to its first T tokens (as
/// <see cref="TrainingOptions.MaxSequenceLength"/> truncates rows) and counted in
/// <see cref="PackingStats.TruncatedExamples"/>. Examples never see each other: targets stop at each
/// example's last token, and positions restart at 0 so the model's attention and RoPE treat every
/// example as if it were alone in its row (the <see cref="Models.CausalLmBatch"/> positions contract).
/// Padding tokens get their own positions from 0 and target −100.
/// </remarks>
public static class SequencePacker
{
    /// <summary>Packs <paramref name="examples"/> lazily into rows of <paramref name="sequenceLength"/> tokens.</summary>
    /// <param name="examples">Rows in the order to pack; read once, as the result is enumerated.</param>
    /// <param name="sequenceLength">T, tokens per packed row (at least 2).</param>
    /// <param name="padId">Id written into padding (never a target).</param>
    /// <param name="stats">Filled in while the rows are produced; null to skip.</param>
    public static IEnumerable<PackedSequence> Pack(IEnumerable<TokenRow> examples, int sequenceLength, int padId = 0, PackingStats? stats = null)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (sequenceLength < 2)
        {
            throw new ArgumentOutOfRangeException(nameof(sequenceLength), sequenceLength, "a packed row needs at least 2 tokens (one input and one target)");
        }

        if (padId < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(padId), padId, "the padding id must be a vocabulary id (0 or more)");
        }

        return PackIterator(examples, sequenceLength, padId, stats ?? new PackingStats());
    }

    private static IEnumerable<PackedSequence> PackIterator(IEnumerable<TokenRow> examples, int t, int padId, PackingStats stats)
    {
        var row = new Row(t);
        foreach (var example in examples)
        {
            Validate(example);
            int length = Math.Min(example.InputIds.Length, t);
            if (length < example.InputIds.Length)
            {
                stats.TruncatedExamples++;
            }

            if (row.Used + length > t)
            {
                yield return row.Close(padId, stats);
                row = new Row(t);
            }

            row.Add(example, length);
            stats.Examples++;
        }

        if (row.Used > 0)
        {
            yield return row.Close(padId, stats);
        }
    }

    private static void Validate(TokenRow example)
    {
        if (example is null)
        {
            throw new ArgumentException("an example is null");
        }

        if (example.InputIds.Length == 0)
        {
            throw new ArgumentException($"example at line {example.Line}: input_ids is empty");
        }

        if (example.Labels is not null && example.Labels.Length != example.InputIds.Length)
        {
            throw new ArgumentException($"example at line {example.Line}: labels has {example.Labels.Length} entries but input_ids has {example.InputIds.Length}");
        }
    }

    /// <summary>The row being filled.</summary>
    private sealed class Row(int t)
    {
        private readonly int[] ids = new int[t];
        private readonly int[] targets = new int[t];
        private readonly int[] positions = new int[t];
        private readonly List<int> lines = [];

        public int Used { get; private set; }

        // example tokens [0, n) -> ids[Used + i]; targets[Used + i] = labels[i + 1] for i < n − 1, the last −100.
        public void Add(TokenRow example, int n)
        {
            int[] labels = example.Labels ?? example.InputIds;
            for (int i = 0; i < n; i++)
            {
                ids[Used + i] = example.InputIds[i];
                positions[Used + i] = i;
                targets[Used + i] = i + 1 < n ? labels[i + 1] : CrossEntropy.IgnoreIndex;
            }

            lines.Add(example.Line);
            Used += n;
        }

        public PackedSequence Close(int padId, PackingStats stats)
        {
            for (int i = Used; i < ids.Length; i++)
            {
                ids[i] = padId;
                positions[i] = i - Used;
                targets[i] = CrossEntropy.IgnoreIndex;
            }

            stats.Sequences++;
            stats.PaddingTokens += ids.Length - Used;
            return new PackedSequence(ids, targets, positions, [.. lines], Used);
        }
    }
}
