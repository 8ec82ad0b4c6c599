using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>Attention over packed rows: each query sees only its own example (positions restart at 0).</summary>
public sealed unsafe class PackedAttentionTests
{
    // Same arithmetic as unpacked attention over fewer keys: AttentionTests' tolerances apply.
    private const double ForwardTolerance = 1e-5;
    private const double BackwardTolerance = 2e-5;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferencesWhenPacked()
    {
        var rng = new Random(11);
        const int b = 2, t = 5, nh = 2, nkv = 1, hs = 3;
        int[] positions = [0, 1, 0, 1, 2, 0, 0, 1, 2, 3];
        var q = RandomArray(rng, b * t * nh * hs, 1.5);
        var k = RandomArray(rng, b * t * nkv * hs, 1.5);
        var v = RandomArray(rng, b * t * nkv * hs);
        var dout = RandomArray(rng, q.Length);
        var (dq, dk, dv) = AttentionReference.Backward(dout, q, k, v, b, t, nh, nkv, hs, positions);
        FiniteDifference.Check(p => AttentionReference.Forward(p, k, v, b, t, nh, nkv, hs, positions).O, q, dout, dq, "dq");
        FiniteDifference.Check(p => AttentionReference.Forward(q, p, v, b, t, nh, nkv, hs, positions).O, k, dout, dk, "dk");
        FiniteDifference.Check(p => AttentionReference.Forward(q, k, p, b, t, nh, nkv, hs, positions).O, v, dout, dv, "dv");
    }

    [Fact]
    public void PackedRowEqualsItsExamplesRunSeparately()
    {
        // Two examples of 3 and 4 tokens in one row give exactly the outputs of the two rows alone.
        var rng = new Random(12);
        const int nh = 4, nkv = 2, hs = 8;
        var (q, k, v, _) = AttentionTests.Inputs(rng, 1, 7, nh, nkv, hs);
        var (packed, _) = AttentionReference.Forward(q, k, v, 1, 7, nh, nkv, hs, [0, 1, 2, 0, 1, 2, 3]);
        var (first, _) = AttentionReference.Forward(q[..(3 * nh * hs)], k[..(3 * nkv * hs)], v[..(3 * nkv * hs)], 1, 3, nh, nkv, hs);
        var (second, _) = AttentionReference.Forward(q[(3 * nh * hs)..], k[(3 * nkv * hs)..], v[(3 * nkv * hs)..], 1, 4, nh, nkv, hs);
        Assert.Equal(first.Concat(second), packed);
    }

    public static TheoryData<int, int, int, int, int, int> Shapes => new()
    {
        // b, t, nh, nkv, hs, seed — examples straddling the 32-row tiles and 64-key blocks.
        { 1, 7, 2, 1, 4, 1 },
        { 2, 40, 4, 2, 16, 2 },
        { 1, 70, 4, 1, 33, 3 },
        { 2, 130, 2, 2, 64, 4 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void OptimizedMatchesReferenceOnRandomPackings(int b, int t, int nh, int nkv, int hs, int seed)
    {
        var rng = new Random(seed);
        var positions = RandomPacking(rng, b, t);
        var (qd, kd, vd, doutd) = AttentionTests.Inputs(rng, b, t, nh, nkv, hs);
        AttentionTests.AssertMatchesReference(qd, kd, vd, doutd, b, t, nh, nkv, hs, positions, default, ForwardTolerance, BackwardTolerance, $"B={b} T={t} NH={nh} NKV={nkv} HS={hs} positions=[{string.Join(",", positions)}]");
    }

    [Fact]
    public void RejectsPositionsThatDoNotContinueAnExample()
    {
        int[] bad = [0, 1, 3];
        var e = Assert.Throws<ArgumentException>(() =>
        {
            fixed (int* pp = bad)
            {
                Attention.Forward(null, null, null, null, null, 1, 3, 1, 1, 2, pp);
            }
        });
        Assert.Contains("column 2", e.Message, StringComparison.Ordinal);
    }

    // Examples of random lengths 1–40 laid end to end in each row.
    internal static int[] RandomPacking(Random rng, int b, int t)
    {
        var positions = new int[b * t];
        for (int r = 0; r < b; r++)
        {
            int p = 0, left = rng.Next(1, 41);
            for (int i = 0; i < t; i++, left--)
            {
                if (left == 0)
                {
                    (p, left) = (0, rng.Next(1, 41));
                }

                positions[(r * t) + i] = p++;
            }
        }

        return positions;
    }
}
