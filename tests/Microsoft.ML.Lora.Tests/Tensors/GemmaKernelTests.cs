using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>
/// Gemma's kernels against float64 math: GeGLU (tanh GELU), logit soft-capping, and attention with another
/// score scale and soft-capped scores (forward, backward, KV-cache decode), with and without a window.
/// </summary>
public sealed unsafe class GemmaKernelTests
{
    // F32 kernels vs float64 formulas over a few dozen flops per element.
    private const double ElementwiseTolerance = 2e-6;
    private const double ForwardTolerance = 1e-5;
    private const double BackwardTolerance = 2e-5;

    private static double GeluTanh(double g) => 0.5 * g * (1 + Math.Tanh(Math.Sqrt(2 / Math.PI) * (g + (0.044715 * g * g * g))));

    [Fact]
    public void GeGluMatchesTheTanhGeluFormulaAndItsDerivative()
    {
        var rng = new Random(31);
        const int n = 3000; // several chunks, a partial last one
        double[] g = RandomArray(rng, n, 3), u = RandomArray(rng, n), d = RandomArray(rng, n);
        float[] gf = ToFloat(g), uf = ToFloat(u), df = ToFloat(d);
        var h = new float[n];
        var dg = new float[n];
        var du = new float[n];
        fixed (float* gp = gf, up = uf, dp = df, hp = h, dgp = dg, dup = du)
        {
            GeGlu.Forward(gp, up, hp, n);
            GeGlu.Backward(dp, gp, up, dgp, dup, n);
        }

        double[] gd = Array.ConvertAll(gf, x => (double)x), ud = Array.ConvertAll(uf, x => (double)x), dd = Array.ConvertAll(df, x => (double)x);
        var expectedH = new double[n];
        var expectedDg = new double[n];
        var expectedDu = new double[n];
        for (int i = 0; i < n; i++)
        {
            expectedH[i] = GeluTanh(gd[i]) * ud[i];
            expectedDu[i] = GeluTanh(gd[i]) * dd[i];
            const double step = 1e-6;
            expectedDg[i] = (GeluTanh(gd[i] + step) - GeluTanh(gd[i] - step)) / (2 * step) * ud[i] * dd[i];
        }

        AssertClose(expectedH, h, ElementwiseTolerance, "h");
        AssertClose(expectedDu, du, ElementwiseTolerance, "dup");
        AssertClose(expectedDg, dg, 1e-5, "dgate (central differences of the formula)");
    }

    [Fact]
    public void SoftcapCapsAndItsGradientIsOneMinusTanhSquared()
    {
        const float cap = 3f;
        float[] x = [-40f, -3f, -0.5f, 0f, 0.25f, 2.9f, 100f];
        float[] y = (float[])x.Clone();
        float[] dy = [1f, 1f, 1f, 1f, 2f, 1f, 1f];
        fixed (float* yp = y, dyp = dy)
        {
            Softcap.Forward(yp, y.Length, cap);
            Softcap.Backward(dyp, yp, y.Length, cap);
        }

        AssertClose(Array.ConvertAll(x, v => cap * Math.Tanh(v / cap)), y, 1e-6, "capped");
        var slope = Array.ConvertAll(x, v => 1 - (Math.Tanh(v / cap) * Math.Tanh(v / cap)));
        slope[4] *= 2;
        AssertClose(slope, dy, 1e-5, "gradient");
        Assert.All(y, v => Assert.InRange(v, -cap, cap));
    }

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferencesWithAScaleAndASoftcap()
    {
        var rng = new Random(32);
        const int b = 1, t = 5, nh = 2, nkv = 1, hs = 3;
        const double scale = 0.4, softcap = 1.5;
        var q = RandomArray(rng, b * t * nh * hs, 2);
        var k = RandomArray(rng, b * t * nkv * hs, 2);
        var v = RandomArray(rng, b * t * nkv * hs);
        var dout = RandomArray(rng, q.Length);
        var (dq, dk, dv) = AttentionReference.Backward(dout, q, k, v, b, t, nh, nkv, hs, null, 0, scale, softcap);
        FiniteDifference.Check(p => AttentionReference.Forward(p, k, v, b, t, nh, nkv, hs, null, 0, scale, softcap).O, q, dout, dq, "dq");
        FiniteDifference.Check(p => AttentionReference.Forward(q, p, v, b, t, nh, nkv, hs, null, 0, scale, softcap).O, k, dout, dk, "dk");
        FiniteDifference.Check(p => AttentionReference.Forward(q, k, p, b, t, nh, nkv, hs, null, 0, scale, softcap).O, v, dout, dv, "dv");
    }

    [Theory]
    [InlineData(1, 9, 2, 1, 8, 0, 0.2f, 2f)]
    [InlineData(2, 70, 4, 2, 16, 0, 0.1f, 5f)]
    [InlineData(1, 130, 4, 1, 32, 40, 0.3f, 3f)]
    [InlineData(1, 50, 2, 2, 8, 7, 0.25f, 0f)]
    public void OptimizedMatchesReference(int b, int t, int nh, int nkv, int hs, int window, float scale, float softcap)
    {
        var rng = new Random(t + window);
        var (qd, kd, vd, doutd) = AttentionTests.Inputs(rng, b, t, nh, nkv, hs);
        for (int i = 0; i < qd.Length; i++)
        {
            qd[i] *= 3; // scores well into the cap's bend
        }

        var spec = new AttentionSpec(window, scale, softcap);
        string at = $"B={b} T={t} NH={nh} NKV={nkv} HS={hs} window={window} scale={scale} softcap={softcap}";
        AttentionTests.AssertMatchesReference(qd, kd, vd, doutd, b, t, nh, nkv, hs, null, spec, ForwardTolerance, BackwardTolerance, at);

        // The KV-cache kernel over the whole sequence at once gives the same outputs.
        var (eo, _) = AttentionReference.Forward(qd, kd, vd, b, t, nh, nkv, hs, null, window, scale, softcap);
        float[] q = ToFloat(qd), k = ToFloat(kd), v = ToFloat(vd);
        var decoded = new float[q.Length];
        fixed (float* qp = q, kp = k, vp = v, decp = decoded)
        {
            for (int bi = 0; bi < b; bi++)
            {
                long row = (long)bi * t;
                AttentionDecode.Forward(qp + (row * nh * hs), kp + (row * nkv * hs), vp + (row * nkv * hs), decp + (row * nh * hs), 1, t, 0, t, nh, nkv, hs, spec);
            }
        }

        AssertClose(eo, decoded, ForwardTolerance, $"decode {at}");
    }
}
