using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

public sealed unsafe class RmsNormTests
{
    // F32 vs double: rows of ≤ 1024 squares summed in float (relative error ≲ 1e-6 with vector
    // accumulators), then one product per output; 1e-5 keeps ~10× headroom.
    private const double ForwardTolerance = 1e-5;

    // dx = rstd·(g − x·rstd²·mean(g·x)) adds a float dot product and a subtraction that can cancel
    // (C = 1 leaves only eps·rstd³·g): the error is relative to the terms, so dx is compared with the
    // RMS of g·rstd as floor (see DxScale); same 1e-5 bound.
    private const double BackwardTolerance = 1e-5;

    private const float Eps = 1e-5f;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var rng = new Random(1);
        const int n = 3, c = 5;
        var x = RandomArray(rng, n * c);
        var w = RandomArray(rng, c, 2);
        var dy = RandomArray(rng, n * c);
        var (dx, dw) = RmsNormReference.Backward(dy, x, w, n, c, Eps);
        FiniteDifference.Check(p => RmsNormReference.Forward(p, w, n, c, Eps).Y, x, dy, dx, "dx");
        FiniteDifference.Check(p => RmsNormReference.Forward(x, p, n, c, Eps).Y, w, dy, dw, "dweight");
    }

    [Fact]
    public void ForwardAndBackwardMatchReferenceForEveryTail()
    {
        var rng = new Random(2);
        foreach (int n in new[] { 0, 1, 3 })
        {
            for (int c = 0; c <= 70; c++)
            {
                Check(rng, n, c);
            }
        }

        Check(rng, 5, 255);
        Check(rng, 40, 1024);
        Check(rng, 3, 300); // spans two column blocks of the weight-gradient pass
    }

    [Fact]
    public void BackwardSkipsNullWeightGradientAndAllowsDxAliasingDy()
    {
        var rng = new Random(3);
        const int n = 4, c = 19;
        var x = ToFloat(RandomArray(rng, n * c));
        var w = ToFloat(RandomArray(rng, c));
        var dyd = RandomArray(rng, n * c);
        var dy = ToFloat(dyd);
        var y = new float[n * c];
        var rstd = new float[n];
        fixed (float* xp = x, wp = w, yp = y, rp = rstd, dyp = dy)
        {
            RmsNorm.Forward(xp, wp, yp, rp, n, c, Eps);
            RmsNorm.Backward(dyp, xp, wp, rp, dyp, null, n, c);
        }

        var (dx, _) = RmsNormReference.Backward(dyd, ToDouble(x), ToDouble(w), n, c, Eps);
        AssertClose(dx, dy, BackwardTolerance, DxScale(dyd, ToDouble(w), ToDouble(x), n, c), "dx written over dy");
    }

    private static void Check(Random rng, int n, int c)
    {
        var xd = RandomArray(rng, n * c, 3);
        var wd = RandomArray(rng, c, 2);
        var dyd = RandomArray(rng, n * c);
        var dw0 = RandomArray(rng, c);
        float[] x = ToFloat(xd), w = ToFloat(wd), dy = ToFloat(dyd), dw = ToFloat(dw0);
        var y = new float[n * c];
        var rstd = new float[n];
        var dx = new float[n * c];
        fixed (float* xp = x, wp = w, yp = y, rp = rstd, dyp = dy, dxp = dx, dwp = dw)
        {
            RmsNorm.Forward(xp, wp, yp, rp, n, c, Eps);
            RmsNorm.Backward(dyp, xp, wp, rp, dxp, dwp, n, c);
        }

        var (ey, erstd) = RmsNormReference.Forward(xd, wd, n, c, Eps);
        var (edx, edw) = RmsNormReference.Backward(dyd, xd, wd, n, c, Eps);
        for (int j = 0; j < c; j++)
        {
            edw[j] += (float)dw0[j]; // the kernel accumulates into dweight
        }

        string at = $"N={n} C={c}";
        AssertClose(ey, y, ForwardTolerance, $"y {at}");
        AssertClose(erstd, rstd, ForwardTolerance, $"rstd {at}");
        AssertClose(edx, dx, BackwardTolerance, DxScale(dyd, wd, xd, n, c), $"dx {at}");
        AssertClose(edw, dw, BackwardTolerance, $"dweight {at}");
    }

    // RMS of the first term of dx, dy·w·rstd: the size of what the subtraction in dx cancels against.
    private static double DxScale(double[] dy, double[] w, double[] x, int n, int c)
    {
        var (_, rstd) = RmsNormReference.Forward(x, w, n, c, Eps);
        var g = new double[n * c];
        for (int i = 0; i < n * c; i++)
        {
            g[i] = dy[i] * w[i % c] * rstd[i / c];
        }

        return Rms(g);
    }
}
