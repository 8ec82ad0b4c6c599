using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

public sealed unsafe class SwiGluTests
{
    // Element-wise: TensorPrimitives' float sigmoid is accurate to a few ulp (~1e-7 relative), then two
    // to four rounded products; 1e-5 keeps ~10× headroom.
    private const double Tolerance = 1e-5;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var rng = new Random(1);
        var g = RandomArray(rng, 7, 4);
        var u = RandomArray(rng, 7, 2);
        var dh = RandomArray(rng, 7);
        var (dg, du) = SwiGluReference.Backward(dh, g, u);
        FiniteDifference.Check(p => SwiGluReference.Forward(p, u), g, dh, dg, "dgate");
        FiniteDifference.Check(p => SwiGluReference.Forward(g, p), u, dh, du, "dup");
    }

    [Fact]
    public void ForwardAndBackwardMatchReferenceForEveryTail()
    {
        var rng = new Random(2);
        for (int n = 0; n <= 256; n++)
        {
            Check(rng, n);
        }

        foreach (int n in new[] { 1023, 1024, 1025, 20_000 })
        {
            Check(rng, n); // several 1024-element chunks, split over threads
        }
    }

    [Fact]
    public void BackwardAllowsGradientsToOverwriteInputs()
    {
        var rng = new Random(3);
        const int n = 1500;
        var gd = RandomArray(rng, n, 5);
        var ud = RandomArray(rng, n);
        var dhd = RandomArray(rng, n);
        float[] g = ToFloat(gd), u = ToFloat(ud), dh = ToFloat(dhd);
        fixed (float* gp = g, up = u, dhp = dh)
        {
            SwiGlu.Backward(dhp, gp, up, gp, dhp, n); // dgate over gate, dup over dh
        }

        var (edg, edu) = SwiGluReference.Backward(dhd, gd, ud);
        AssertClose(edg, g, Tolerance, "dgate over gate");
        AssertClose(edu, dh, Tolerance, "dup over dh");
    }

    private static void Check(Random rng, int n)
    {
        var gd = RandomArray(rng, n, 6);
        var ud = RandomArray(rng, n, 2);
        var dhd = RandomArray(rng, n);
        float[] g = ToFloat(gd), u = ToFloat(ud), dh = ToFloat(dhd);
        var h = new float[n];
        var dg = new float[n];
        var du = new float[n];
        fixed (float* gp = g, up = u, dhp = dh, hp = h, dgp = dg, dup = du)
        {
            SwiGlu.Forward(gp, up, hp, n);
            SwiGlu.Backward(dhp, gp, up, dgp, dup, n);
        }

        var (edg, edu) = SwiGluReference.Backward(dhd, gd, ud);
        AssertClose(SwiGluReference.Forward(gd, ud), h, Tolerance, $"h N={n}");
        AssertClose(edg, dg, Tolerance, $"dgate N={n}");
        AssertClose(edu, du, Tolerance, $"dup N={n}");
    }
}
