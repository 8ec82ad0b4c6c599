using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>
/// Sliding-window attention (Mistral, Qwen2/3 with use_sliding_window, Gemma's local layers): the query at
/// column i sees keys i − W + 1 … i only, with or without packing, in the training kernel and the KV-cache one.
/// </summary>
public sealed unsafe class SlidingWindowAttentionTests
{
    // Same arithmetic as unpacked attention over fewer keys: AttentionTests' tolerances apply.
    private const double ForwardTolerance = 1e-5;
    private const double BackwardTolerance = 2e-5;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferencesWithAWindow()
    {
        var rng = new Random(21);
        const int b = 2, t = 6, nh = 2, nkv = 1, hs = 3, window = 2;
        var q = RandomArray(rng, b * t * nh * hs, 1.5);
        var k = RandomArray(rng, b * t * nkv * hs, 1.5);
        var v = RandomArray(rng, b * t * nkv * hs);
        var dout = RandomArray(rng, q.Length);
        var (dq, dk, dv) = AttentionReference.Backward(dout, q, k, v, b, t, nh, nkv, hs, null, window);
        FiniteDifference.Check(p => AttentionReference.Forward(p, k, v, b, t, nh, nkv, hs, null, window).O, q, dout, dq, "dq");
        FiniteDifference.Check(p => AttentionReference.Forward(q, p, v, b, t, nh, nkv, hs, null, window).O, k, dout, dk, "dk");
        FiniteDifference.Check(p => AttentionReference.Forward(q, k, p, b, t, nh, nkv, hs, null, window).O, v, dout, dv, "dv");
    }

    [Fact]
    public void AWindowOfOneSeesOnlyItselfAndAWideOneIsPlainCausal()
    {
        var rng = new Random(22);
        const int t = 5, nh = 2, nkv = 1, hs = 4;
        var (q, k, v, _) = AttentionTests.Inputs(rng, 1, t, nh, nkv, hs);
        var (own, _) = AttentionReference.Forward(q, k, v, 1, t, nh, nkv, hs, null, window: 1);
        for (int i = 0; i < t; i++)
        {
            for (int h = 0; h < nh; h++)
            {
                Assert.Equal(v.AsSpan(i * nkv * hs, hs).ToArray(), own.AsSpan(((i * nh) + h) * hs, hs).ToArray());
            }
        }

        Assert.Equal(AttentionReference.Forward(q, k, v, 1, t, nh, nkv, hs).O, AttentionReference.Forward(q, k, v, 1, t, nh, nkv, hs, null, window: t).O);
        Assert.NotEqual(AttentionReference.Forward(q, k, v, 1, t, nh, nkv, hs).O, AttentionReference.Forward(q, k, v, 1, t, nh, nkv, hs, null, window: t - 1).O);
    }

    public static TheoryData<int, int, int, int, int, int, bool> Shapes => new()
    {
        // b, t, nh, nkv, hs, window, packed — windows inside one 64-key block, across blocks, and wider than T.
        { 1, 7, 2, 1, 4, 3, false },
        { 2, 40, 4, 2, 16, 1, true },
        { 1, 130, 4, 1, 33, 50, false },
        { 2, 130, 2, 2, 64, 70, true },
        { 1, 100, 2, 1, 8, 200, false },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void OptimizedMatchesReference(int b, int t, int nh, int nkv, int hs, int window, bool packed)
    {
        var rng = new Random((t * 31) + window);
        int[]? positions = packed ? PackedAttentionTests.RandomPacking(rng, b, t) : null;
        var (qd, kd, vd, doutd) = AttentionTests.Inputs(rng, b, t, nh, nkv, hs);
        AttentionTests.AssertMatchesReference(qd, kd, vd, doutd, b, t, nh, nkv, hs, positions, new AttentionSpec(window), ForwardTolerance, BackwardTolerance, $"B={b} T={t} NH={nh} NKV={nkv} HS={hs} window={window} packed={packed}");
    }

    [Theory]
    [InlineData(3)]
    [InlineData(17)]
    public void DecodeWithAWindowEqualsTheTrainingKernelAtEveryPosition(int window)
    {
        // The whole sequence decoded into a cache (prefix of 9, then one token at a time) gives the outputs
        // of one windowed training-kernel pass over it.
        var rng = new Random(window);
        const int t = 20, nh = 4, nkv = 2, hs = 8, prefix = 9;
        var (qd, kd, vd, _) = AttentionTests.Inputs(rng, 1, t, nh, nkv, hs);
        float[] q = ToFloat(qd), k = ToFloat(kd), v = ToFloat(vd);
        var full = new float[q.Length];
        var lse = new float[nh * t];
        var decoded = new float[q.Length];
        fixed (float* qp = q, kp = k, vp = v, fp = full, lp = lse, dp = decoded)
        {
            Attention.Forward(qp, kp, vp, fp, lp, 1, t, nh, nkv, hs, null, new AttentionSpec(window));
            AttentionDecode.Forward(qp, kp, vp, dp, 1, prefix, 0, t, nh, nkv, hs, new AttentionSpec(window));
            for (int i = prefix; i < t; i++)
            {
                AttentionDecode.Forward(qp + (i * nh * hs), kp, vp, dp + (i * nh * hs), 1, 1, i, t, nh, nkv, hs, new AttentionSpec(window));
            }
        }

        AssertClose(ToDouble(full), decoded, ForwardTolerance, $"decode window={window}");
    }
}
