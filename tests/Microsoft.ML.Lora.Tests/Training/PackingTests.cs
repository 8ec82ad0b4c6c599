using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// Packing and padding at example boundaries: exact ids, targets and positions written by hand, and the
/// loss of a packed batch against each example run alone.
/// </summary>
public sealed class PackingTests
{
    private const int X = -100;
    private const int P = 0;

    // Summed losses of ~50 tokens in float32 through different batch shapes (GEMM blocking and attention
    // tiling differ with T): a few ulps per token, ~1e-6 relative. 1e-4 leaves room; the packed test also
    // checks that letting examples see each other moves the sum by more than 100× this.
    private const double LossRelativeTolerance = 1e-4;

    // CreateRandom's std 0.02 gives near-uniform predictions whatever the context (loss ≈ ln V at every
    // token); scaling the matrices to std 0.5 makes the loss depend on what each token attends to.
    private const float WeightScale = 25f;

    private static readonly TokenRow A = new([1, 2, 3], null, 10);
    private static readonly TokenRow B = new([4, 5, 6, 7], [X, X, 6, 7], 11);
    private static readonly TokenRow C = new([8, 9], null, 12);
    private static readonly TokenRow D = new([10, 11, 12, 13, 14, 15, 16, 17, 18, 19], null, 13);
    private static readonly TokenRow E = new([20], null, 14);

    [Fact]
    public void NextFitPackingKeepsTargetsAndPositionsInsideEachExample()
    {
        var stats = new PackingStats();
        var rows = SequencePacker.Pack([A, B, C, D, E], sequenceLength: 8, padId: P, stats: stats).ToList();

        Assert.Equal(4, rows.Count);

        // A + B fill 7 of 8; C does not fit in the last slot.
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, P], rows[0].InputIds);
        Assert.Equal([2, 3, X, X, 6, 7, X, X], rows[0].Targets);
        Assert.Equal([0, 1, 2, 0, 1, 2, 3, 0], rows[0].Positions);
        Assert.Equal([10, 11], rows[0].Lines);
        Assert.Equal(7, rows[0].UsedTokens);

        // C alone: D (truncated to 8) does not fit after it.
        Assert.Equal([8, 9, P, P, P, P, P, P], rows[1].InputIds);
        Assert.Equal([9, X, X, X, X, X, X, X], rows[1].Targets);
        Assert.Equal([0, 1, 0, 1, 2, 3, 4, 5], rows[1].Positions);

        // D truncated to its first 8 tokens; its last kept token predicts nothing.
        Assert.Equal([10, 11, 12, 13, 14, 15, 16, 17], rows[2].InputIds);
        Assert.Equal([11, 12, 13, 14, 15, 16, 17, X], rows[2].Targets);
        Assert.Equal([0, 1, 2, 3, 4, 5, 6, 7], rows[2].Positions);
        Assert.Equal([13], rows[2].Lines);

        // A one-token example has no target.
        Assert.Equal([20, P, P, P, P, P, P, P], rows[3].InputIds);
        Assert.All(rows[3].Targets, t => Assert.Equal(X, t));
        Assert.Equal([0, 0, 1, 2, 3, 4, 5, 6], rows[3].Positions);

        Assert.Equal(5, stats.Examples);
        Assert.Equal(1, stats.TruncatedExamples);
        Assert.Equal(4, stats.Sequences);
        Assert.Equal(14, stats.PaddingTokens);
    }

    [Fact]
    public void AnExampleThatFillsTheRowExactlyClosesItWithoutPadding()
    {
        var rows = SequencePacker.Pack([new TokenRow([1, 2, 3], null, 1), new TokenRow([4, 5, 6], null, 2), new TokenRow([7, 8], null, 3)], 6, padId: 99).ToList();
        Assert.Equal(2, rows.Count);
        Assert.Equal([1, 2, 3, 4, 5, 6], rows[0].InputIds);
        Assert.Equal([2, 3, X, 5, 6, X], rows[0].Targets);
        Assert.Equal([0, 1, 2, 0, 1, 2], rows[0].Positions);
        Assert.Equal([7, 8, 99, 99, 99, 99], rows[1].InputIds);
        Assert.Equal([0, 1, 0, 1, 2, 3], rows[1].Positions);
    }

    [Fact]
    public void PackedBatchesStackRowsWithPositionsTheBatchAccepts()
    {
        var batches = Collator.PackedBatches([A, B, C, D, E], sequenceLength: 8, batchSize: 3).ToList();

        Assert.Equal([3, 1], batches.Select(b => b.B));
        var first = batches[0];
        Assert.Equal(8, first.T);
        Assert.Equal([1, 2, 3, 4, 5, 6, 7, P, 8, 9, P, P, P, P, P, P, 10, 11, 12, 13, 14, 15, 16, 17], first.InputIds);
        Assert.Equal([2, 3, X, X, 6, 7, X, X, 9, X, X, X, X, X, X, X, 11, 12, 13, 14, 15, 16, 17, X], first.Targets);
        Assert.Equal([0, 1, 2, 0, 1, 2, 3, 0, 0, 1, 0, 1, 2, 3, 4, 5, 0, 1, 2, 3, 4, 5, 6, 7], first.Positions!);
        Assert.Equal(4 + 1 + 7, first.CountTargets());
        Assert.Equal(0, batches[1].CountTargets());
    }

    [Fact]
    public void PackingIsLazy()
    {
        static IEnumerable<TokenRow> Endless()
        {
            for (int i = 0; ; i++)
            {
                yield return new TokenRow([1, 2, 3], null, i + 1);
            }
        }

        var rows = SequencePacker.Pack(Endless(), 7).Take(2).ToList();
        Assert.Equal([1, 2], rows[0].Lines);
        Assert.Equal([3, 4], rows[1].Lines);
    }

    [Fact]
    public void BadArgumentsAndExamplesAreRejected()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => SequencePacker.Pack([A], 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => SequencePacker.Pack([A], 4, padId: -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Collator.PackedBatches([A], 4, batchSize: 0));
        var e = Assert.Throws<ArgumentException>(() => SequencePacker.Pack([A, new TokenRow([], null, 7)], 4).ToList());
        Assert.Equal("example at line 7: input_ids is empty", e.Message);
        e = Assert.Throws<ArgumentException>(() => SequencePacker.Pack([new TokenRow([1, 2], [1], 8)], 4).ToList());
        Assert.Equal("example at line 8: labels has 1 entries but input_ids has 2", e.Message);
        Assert.Throws<ArgumentException>(() => Collator.Packed([]));
    }

    [Fact]
    public void PaddedBatchesHoldOneExamplePerRowRightPaddedAndTruncated()
    {
        var batch = Collator.Padded([A, B, D], padId: 99, maxLength: 5);

        Assert.Equal(3, batch.B);
        Assert.Equal(5, batch.T);
        Assert.Null(batch.Positions);
        Assert.Equal([1, 2, 3, 99, 99, 4, 5, 6, 7, 99, 10, 11, 12, 13, 14], batch.InputIds);
        Assert.Equal([2, 3, X, X, X, X, 6, 7, X, X, 11, 12, 13, 14, X], batch.Targets);
        Assert.Throws<ArgumentOutOfRangeException>(() => Collator.Padded([A], maxLength: 1));
    }

    [Fact]
    public void PaddedBatchLossEqualsTheSumOfEachExampleRunAlone()
    {
        using var model = TinyModel();
        var examples = Examples(seed: 5);

        var padded = model.Forward(Collator.Padded(examples, padId: 1, maxLength: 16));
        var alone = SumAlone(model, examples, 16);

        Assert.Equal(alone.Tokens, padded.Tokens);
        AssertClose(alone.Sum, padded.Sum);
    }

    /// <summary>
    /// The positions contract end to end: each example in a packed row must get exactly the loss it gets
    /// alone in its own batch (attention confined to the example, RoPE from position 0).
    /// </summary>
    [Fact]
    public void PackedBatchLossEqualsTheSumOfEachExampleRunAlone()
    {
        using var model = TinyModel();
        var examples = Examples(seed: 5);

        var stats = new PackingStats();
        var packed = default(LossResult);
        var leaky = default(LossResult);
        foreach (var batch in Collator.PackedBatches(examples, sequenceLength: 16, batchSize: 2, padId: 1, stats: stats))
        {
            packed += model.Forward(batch);
            leaky += model.Forward(new CausalLmBatch(batch.B, batch.T, batch.InputIds, batch.Targets));
        }

        var alone = SumAlone(model, examples, 16);

        // The same rows without positions let each example attend to the ones before it in its row.
        double leak = Math.Abs(leaky.Sum - alone.Sum) / alone.Sum;
        Assert.True(leak > 100 * LossRelativeTolerance, $"the model must be context-sensitive for the test to mean anything; cross-example attention moved the loss by only {leak:E2}");

        Assert.True(stats.Sequences < examples.Count, "the examples must share rows for the test to mean anything");
        Assert.Equal(1, stats.TruncatedExamples);
        Assert.Equal(alone.Tokens, packed.Tokens);
        AssertClose(alone.Sum, packed.Sum);
    }

    private static LlamaForCausalLM TinyModel()
    {
        var config = LlamaConfig.Create(vocabSize: 32, hiddenSize: 32, intermediateSize: 64, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
        var model = LlamaForCausalLM.CreateRandom(config, seed: 3);
        foreach (var p in model.Parameters().Where(p => p.Value.Rank == 2))
        {
            foreach (ref float w in p.Value.AsF32())
            {
                w *= WeightScale;
            }
        }

        return model;
    }

    /// <summary>Examples of 1–9 tokens (one of 20, truncated at 16), some with masked labels.</summary>
    private static List<TokenRow> Examples(int seed)
    {
        var random = new Random(seed);
        var rows = new List<TokenRow>();
        for (int r = 0; r < 12; r++)
        {
            int length = r == 5 ? 20 : random.Next(1, 10);
            int[] ids = Enumerable.Range(0, length).Select(_ => random.Next(32)).ToArray();
            int[]? labels = r % 3 == 1 ? ids.Select((id, i) => i < length / 2 ? X : id).ToArray() : null;
            rows.Add(new TokenRow(ids, labels, r + 1));
        }

        return rows;
    }

    private static LossResult SumAlone(LlamaForCausalLM model, List<TokenRow> examples, int maxLength)
    {
        var total = default(LossResult);
        foreach (var e in examples.Where(e => e.InputIds.Length > 1))
        {
            int n = Math.Min(e.InputIds.Length, maxLength);
            total += model.Forward(CausalLmBatch.FromRows([e.InputIds[..n]], [e.Labels?[..n]]));
        }

        return total;
    }

    private static void AssertClose(double expected, double actual)
    {
        Assert.True(
            Math.Abs(expected - actual) <= LossRelativeTolerance * Math.Abs(expected),
            $"summed loss {actual} differs from {expected} by {Math.Abs(expected - actual) / Math.Abs(expected):E2} relative (tolerance {LossRelativeTolerance:E0})");
    }
}
