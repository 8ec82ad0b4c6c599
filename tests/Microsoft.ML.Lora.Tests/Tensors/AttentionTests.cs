using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

public sealed unsafe class AttentionTests
{
    // Output: HS-term float dot products, float exp (a few ulp) and a weighted mean over ≤ 130 keys;
    // measured ≤ 1.2e-6 relative to |o| + rms(o) over the shapes below; 1e-5 keeps ~8× headroom.
    private const double ForwardTolerance = 1e-5;

    // lse is a log-sum-exp of O(1) scores: absolute error ~1e-6 on values of O(1–5).
    private const double LseTolerance = 1e-5;

    // dS = P·(dP − delta) subtracts two O(1) float quantities, then sums over ≤ 130 keys and up to 4 query
    // heads per kv head: measured below 2e-6 of the gradient RMS; 2e-5 keeps 10× headroom.
    // dq and dk are differences that can cancel exactly (T = 1 gives P = 1 and dP = delta, so dq = 0), and
    // their float error scales with the terms, not the result: their floor is the size of one term,
    // rms(dO)·rms(v)·rms(k or q) (dP ~ √HS·rms(dO)·rms(v), times the 1/√HS scale, times k or q).
    private const double BackwardTolerance = 2e-5;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferencesWithGqa()
    {
        var rng = new Random(1);
        const int b = 2, t = 4, nh = 4, nkv = 2, hs = 3;
        var q = RandomArray(rng, b * t * nh * hs, 1.5);
        var k = RandomArray(rng, b * t * nkv * hs, 1.5);
        var v = RandomArray(rng, b * t * nkv * hs);
        var dout = RandomArray(rng, q.Length);
        var (dq, dk, dv) = AttentionReference.Backward(dout, q, k, v, b, t, nh, nkv, hs);
        FiniteDifference.Check(p => AttentionReference.Forward(p, k, v, b, t, nh, nkv, hs).O, q, dout, dq, "dq");
        FiniteDifference.Check(p => AttentionReference.Forward(q, p, v, b, t, nh, nkv, hs).O, k, dout, dk, "dk");
        FiniteDifference.Check(p => AttentionReference.Forward(q, k, p, b, t, nh, nkv, hs).O, v, dout, dv, "dv");
    }

    [Fact]
    public void ReferenceFirstTokenAttendsOnlyToItself()
    {
        // Causality: o at t = 0 is v at t = 0 of the head's kv group, whatever the scores; lse = scale·q·k.
        const int t = 3, nh = 4, nkv = 2, hs = 2;
        var rng = new Random(4);
        var q = RandomArray(rng, t * nh * hs);
        var k = RandomArray(rng, t * nkv * hs);
        var v = RandomArray(rng, t * nkv * hs);
        var (o, lse) = AttentionReference.Forward(q, k, v, 1, t, nh, nkv, hs);
        for (int h = 0; h < nh; h++)
        {
            int g = h / 2;
            Assert.Equal(v[g * hs], o[h * hs], 15);
            Assert.Equal(v[(g * hs) + 1], o[(h * hs) + 1], 15);
            Assert.Equal(((q[h * hs] * k[g * hs]) + (q[(h * hs) + 1] * k[(g * hs) + 1])) / Math.Sqrt(2), lse[h * t], 15);
        }
    }

    public static TheoryData<int, int, int, int, int> Shapes => new()
    {
        // b, t, nh, nkv, hs — GQA ratios 1, 2, 4; T across the 32-row query tile and 64-key block edges.
        { 1, 1, 1, 1, 1 },
        { 1, 1, 4, 1, 16 },
        { 2, 2, 2, 2, 3 },
        { 1, 31, 2, 1, 17 },
        { 1, 32, 4, 2, 8 },
        { 2, 33, 4, 4, 64 },
        { 1, 63, 2, 2, 24 },
        { 1, 64, 4, 1, 16 },
        { 1, 65, 8, 4, 7 },
        { 1, 100, 4, 2, 80 },
        { 1, 130, 4, 1, 64 },
        { 2, 70, 2, 1, 33 },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void ForwardAndBackwardMatchReference(int b, int t, int nh, int nkv, int hs)
    {
        var rng = new Random((((((b * 131) + t) * 131) + nh) * 131) + hs);
        var (q, k, v, dout) = Inputs(rng, b, t, nh, nkv, hs);
        var r = Run(q, k, v, dout, b, t, nh, nkv, hs);
        var (eo, expectedLse) = AttentionReference.Forward(q, k, v, b, t, nh, nkv, hs);
        var (edq, edk, edv) = AttentionReference.Backward(dout, q, k, v, b, t, nh, nkv, hs);
        string at = $"B={b} T={t} NH={nh} NKV={nkv} HS={hs}";
        AssertClose(eo, r.O, ForwardTolerance, $"o {at}");
        AssertClose(expectedLse, r.Lse, LseTolerance, $"lse {at}");
        double term = Rms(dout) * Rms(v);
        AssertClose(edq, r.Dq, BackwardTolerance, Math.Max(Rms(edq), term * Rms(k)), $"dq {at}");
        AssertClose(edk, r.Dk, BackwardTolerance, Math.Max(Rms(edk), term * Rms(q)), $"dk {at}");
        AssertClose(edv, r.Dv, BackwardTolerance, $"dv {at}");
    }

    [Fact]
    public void RejectsHeadCountsThatDoNotGroup()
    {
        var e = Assert.Throws<ArgumentException>(() => Attention.Forward(null, null, null, null, null, 1, 4, 6, 4, 8));
        Assert.Contains("NH=6", e.Message);
        Assert.Contains("NKV=4", e.Message);
    }

    internal static (double[] Q, double[] K, double[] V, double[] Dout) Inputs(Random rng, int b, int t, int nh, int nkv, int hs)
    {
        // Scale 2 makes scores of O(1–4)·√HS/√HS: peaked enough to exercise the online max rescaling.
        return (RandomArray(rng, b * t * nh * hs, 2), RandomArray(rng, b * t * nkv * hs, 2), RandomArray(rng, b * t * nkv * hs), RandomArray(rng, b * t * nh * hs));
    }

    /// <summary>
    /// The optimized kernel's forward and backward against the float64 reference on the same inputs, with packing
    /// <paramref name="positions"/> and <paramref name="spec"/>; gradients are compared on the scale of the terms that
    /// make them (the value of dQ and dK can be small beside them).
    /// </summary>
    internal static void AssertMatchesReference(double[] qd, double[] kd, double[] vd, double[] doutd, int b, int t, int nh, int nkv, int hs, int[]? positions, AttentionSpec spec, double forwardTolerance, double backwardTolerance, string at)
    {
        var (eo, expectedLse) = AttentionReference.Forward(qd, kd, vd, b, t, nh, nkv, hs, positions, spec.Window, spec.Scale, spec.Softcap);
        var (edq, edk, edv) = AttentionReference.Backward(doutd, qd, kd, vd, b, t, nh, nkv, hs, positions, spec.Window, spec.Scale, spec.Softcap);
        var r = Run(qd, kd, vd, doutd, b, t, nh, nkv, hs, positions, spec);
        AssertClose(eo, r.O, forwardTolerance, $"o {at}");
        AssertClose(expectedLse, r.Lse, forwardTolerance, $"lse {at}");
        double term = Rms(doutd) * Rms(vd);
        AssertClose(edq, r.Dq, backwardTolerance, Math.Max(Rms(edq), term * Rms(kd)), $"dq {at}");
        AssertClose(edk, r.Dk, backwardTolerance, Math.Max(Rms(edk), term * Rms(qd)), $"dk {at}");
        AssertClose(edv, r.Dv, backwardTolerance, $"dv {at}");
    }

    internal static Result Run(double[] qd, double[] kd, double[] vd, double[] doutd, int b, int t, int nh, int nkv, int hs, int[]? positions = null, AttentionSpec spec = default)
    {
        float[] q = ToFloat(qd), k = ToFloat(kd), v = ToFloat(vd), dout = ToFloat(doutd);
        var r = new Result(new float[q.Length], new float[b * nh * t], new float[q.Length], new float[k.Length], new float[v.Length]);
        Array.Fill(r.Dk, float.NaN); // overwritten, never accumulated
        Array.Fill(r.Dv, float.NaN);
        Array.Fill(r.Dq, float.NaN);
        fixed (float* qp = q, kp = k, vp = v, dop = dout, op = r.O, lp = r.Lse, dqp = r.Dq, dkp = r.Dk, dvp = r.Dv)
        fixed (int* pp = positions)
        {
            Attention.Forward(qp, kp, vp, op, lp, b, t, nh, nkv, hs, pp, spec);
            Attention.Backward(dop, qp, kp, vp, op, lp, dqp, dkp, dvp, b, t, nh, nkv, hs, pp, spec);
        }

        return r;
    }

    internal sealed record Result(float[] O, float[] Lse, float[] Dq, float[] Dk, float[] Dv);
}

/// <summary>Same bits for 1, 2 and 3 threads: no result may depend on how work is split.</summary>
[Collection(CpuParallelThreadsCollection.Name)]
public sealed unsafe class ThreadCountTests
{
    [Fact]
    public void AttentionIsBitIdenticalForAnyThreadCount()
    {
        const int b = 2, t = 100, nh = 8, nkv = 2, hs = 32;
        var (q, k, v, dout) = AttentionTests.Inputs(new Random(5), b, t, nh, nkv, hs);
        var one = WithThreads(1, () => AttentionTests.Run(q, k, v, dout, b, t, nh, nkv, hs));
        foreach (int threads in new[] { 2, 3 })
        {
            var many = WithThreads(threads, () => AttentionTests.Run(q, k, v, dout, b, t, nh, nkv, hs));
            AssertBitIdentical(one.O, many.O, $"o, {threads} threads");
            AssertBitIdentical(one.Lse, many.Lse, $"lse, {threads} threads");
            AssertBitIdentical(one.Dq, many.Dq, $"dq, {threads} threads");
            AssertBitIdentical(one.Dk, many.Dk, $"dk, {threads} threads");
            AssertBitIdentical(one.Dv, many.Dv, $"dv, {threads} threads");
        }
    }

    [Fact]
    public void CrossEntropyIsBitIdenticalForAnyThreadCount()
    {
        const int n = 64, v = 2000;
        var rng = new Random(6);
        var logits = ToFloat(RandomArray(rng, n * v, 6));
        var targets = new int[n];
        for (int i = 0; i < n; i++)
        {
            targets[i] = i % 5 == 0 ? CrossEntropy.IgnoreIndex : rng.Next(v);
        }

        (float[] Losses, float[] Grad) Run()
        {
            var losses = new float[n];
            var grad = new float[n * v];
            fixed (float* lp = logits, lossp = losses, gp = grad)
            fixed (int* tp = targets)
            {
                CrossEntropy.ForwardBackward(lp, tp, lossp, gp, n, v, 1f / n);
            }

            return (losses, grad);
        }

        var one = WithThreads(1, Run);
        foreach (int threads in new[] { 2, 3 })
        {
            var many = WithThreads(threads, Run);
            AssertBitIdentical(one.Losses, many.Losses, $"losses, {threads} threads");
            AssertBitIdentical(one.Grad, many.Grad, $"dlogits, {threads} threads");
        }
    }

    [Fact]
    public void RowKernelsAreBitIdenticalForAnyThreadCount()
    {
        const int n = 200, c = 300;
        var rng = new Random(7);
        var x = ToFloat(RandomArray(rng, n * c, 2));
        var w = ToFloat(RandomArray(rng, c));
        var dy = ToFloat(RandomArray(rng, n * c));

        float[] Run()
        {
            var y = new float[n * c];
            var rstd = new float[n];
            var dx = new float[n * c];
            var dw = new float[c];
            var h = new float[n * c];
            var dg = new float[n * c];
            var du = new float[n * c];
            fixed (float* xp = x, wp = w, dyp = dy, yp = y, rp = rstd, dxp = dx, dwp = dw, hp = h, dgp = dg, dup = du)
            {
                RmsNorm.Forward(xp, wp, yp, rp, n, c, 1e-6f);
                RmsNorm.Backward(dyp, xp, wp, rp, dxp, dwp, n, c);
                SwiGlu.Forward(xp, yp, hp, n * c);
                SwiGlu.Backward(dyp, xp, yp, dgp, dup, n * c);
            }

            return [.. y, .. rstd, .. dx, .. dw, .. h, .. dg, .. du];
        }

        var one = WithThreads(1, Run);
        AssertBitIdentical(one, WithThreads(2, Run), "RmsNorm and SwiGLU, 2 threads");
        AssertBitIdentical(one, WithThreads(3, Run), "RmsNorm and SwiGLU, 3 threads");
    }
}
