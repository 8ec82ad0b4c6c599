namespace Microsoft.ML.Lora.Training;

/// <summary>
/// One row of packed examples, all arrays of the sequence length T: ids, next-token targets that stay
/// inside each example (−100 at an example's last token and in padding), and each token's position within
/// its example (restarting at 0), as <see cref="Models.CausalLmBatch"/> takes them.
/// </summary>
public sealed class PackedSequence
{
    internal PackedSequence(int[] inputIds, int[] targets, int[] positions, int[] lines, int usedTokens)
    {
        InputIds = inputIds;
        Targets = targets;
        Positions = positions;
        Lines = lines;
        UsedTokens = usedTokens;
    }

    /// <summary>Token ids (T), padding after <see cref="UsedTokens"/>.</summary>
    public int[] InputIds { get; }

    /// <summary>Shifted targets (T): Targets[t] is the label of token t+1 of the same example, else −100.</summary>
    public int[] Targets { get; }

    /// <summary>Position of each token within its example (T); padding counts as one more example from 0.</summary>
    public int[] Positions { get; }

    /// <summary>Source lines of the examples in this row, in order.</summary>
    public IReadOnlyList<int> Lines { get; }

    /// <summary>Tokens that belong to examples; the rest is padding.</summary>
    public int UsedTokens { get; }
}

/// <summary>Counts of a packing pass, updated as rows are produced.</summary>
public sealed class PackingStats
{
    /// <summary>Examples placed.</summary>
    public int Examples { get; internal set; }

    /// <summary>Examples longer than the sequence length, cut to their first tokens.</summary>
    public int TruncatedExamples { get; internal set; }

    /// <summary>Packed rows produced.</summary>
    public int Sequences { get; internal set; }

    /// <summary>Padding tokens in those rows.</summary>
    public long PaddingTokens { get; internal set; }

    /// <inheritdoc/>
    public override string ToString() => $"{Examples} examples in {Sequences} rows ({TruncatedExamples} truncated, {PaddingTokens} padding tokens)";
}
