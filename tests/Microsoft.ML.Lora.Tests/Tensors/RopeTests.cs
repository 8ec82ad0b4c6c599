using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

public sealed unsafe class RopeTests
{
    // Two products and a sum per element with cos/sin rounded to float (relative 6e-8 each): ~2e-7;
    // measured ≤ 1.2e-7 over the sweep; 1e-6 keeps ~8× headroom and is 10⁵ below a wrong sign or swapped half.
    private const double Tolerance = 1e-6;

    // inv_freq is computed in double; hand-derived values below carry 16 digits.
    private const double InvFreqTolerance = 1e-12;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var rng = new Random(1);
        const int b = 2, t = 3, nh = 2, hs = 6;
        var inv = new[] { 1.0, 0.3, 0.05 };
        var q = RandomArray(rng, b * t * nh * hs);
        var dy = RandomArray(rng, q.Length);
        FiniteDifference.Check(p => RopeReference.Forward(p, b, t, nh, hs, inv), q, dy, RopeReference.Backward(dy, b, t, nh, hs, inv), "dq");
    }

    [Fact]
    public void InverseFrequenciesMatchHandComputedValues()
    {
        // θ = 10000, HS = 8: inv_freq_i = 10000^(−i/4) = 1, 0.1, 0.01, 0.001.
        using (var plain = RopeTable.Create(8, 10000, null, 1))
        {
            AssertInv(new[] { 1, 0.1, 0.01, 0.001 }, plain);
        }

        using (var linear = RopeTable.Create(8, 10000, new RopeScaling("linear", 4), 1))
        {
            AssertInv(new[] { 0.25, 0.025, 0.0025, 0.00025 }, linear);
        }

        // llama3, factor 8, original 1024, low 1, high 4: wavelengths 2π/inv = 6.28, 62.8, 628, 6283 against
        // high_freq_wavelen 256 and low_freq_wavelen 1024: i = 0, 1 keep; i = 3 is divided by 8; i = 2 is
        // smoothed with s = (1024·0.01/2π − 1)/3 = 0.2099155390870028, inv = 0.01·((1 − s)/8 + s).
        using var llama3 = RopeTable.Create(8, 10000, new RopeScaling("llama3", 8, 1, 4, 1024), 1);
        AssertInv(new[] { 1, 0.1, 0.0030867609670112745, 0.000125 }, llama3);
    }

    [Fact]
    public void RotationMatchesHandComputedAngles()
    {
        // HS = 2 has inv_freq 1: position p rotates (x1, x2) by p radians. HS = 4, θ = 100: inv = 1, 0.1.
        using var table = RopeTable.Create(4, 100, null, 4);
        const int t = 4;
        var x = new float[t * 4];
        for (int p = 0; p < t; p++)
        {
            x[(p * 4) + 0] = 1; // x1 of frequency 0
            x[(p * 4) + 1] = 2; // x1 of frequency 1
            x[(p * 4) + 2] = 0; // x2 of frequency 0
            x[(p * 4) + 3] = 0; // x2 of frequency 1
        }

        fixed (float* xp = x)
        {
            Rope.Forward(xp, table, 1, t, 1, 4);
        }

        // Position 0 is the identity.
        Assert.Equal(new float[] { 1, 2, 0, 0 }, x[..4]);

        // Position 3: angles 3 and 0.3; (1, 0) -> (cos 3, sin 3), (2, 0) -> 2·(cos 0.3, sin 0.3).
        var expected = new[] { -0.9899924966004454, 2 * 0.955336489125606, 0.1411200080598672, 2 * 0.29552020666133955 };
        AssertClose(expected, x.AsSpan(12, 4), Tolerance, "position 3");
    }

    [Fact]
    public void ForwardAndBackwardMatchReference()
    {
        var rng = new Random(2);
        var llama3 = new RopeScaling("llama3", 8, 1, 4, 64);
        foreach (var scaling in new[] { null, new RopeScaling("linear", 2), llama3 })
        {
            for (int hs = 2; hs <= 72; hs += 2)
            {
                using var table = RopeTable.Create(hs, 10000, scaling, 40);
                foreach (var (b, t, nh) in new[] { (1, 1, 1), (2, 5, 3), (1, 40, 2) })
                {
                    var xd = RandomArray(rng, b * t * nh * hs, 3);
                    var x = ToFloat(xd);
                    var back = ToFloat(xd);
                    fixed (float* xp = x, bp = back)
                    {
                        Rope.Forward(xp, table, b, t, nh, hs);
                        Rope.Backward(bp, table, b, t, nh, hs);
                    }

                    var inv = table.InverseFrequencies.ToArray();
                    string at = $"{scaling?.Type ?? "none"} B={b} T={t} NH={nh} HS={hs}";
                    AssertClose(RopeReference.Forward(xd, b, t, nh, hs, inv), x, Tolerance, $"forward {at}");
                    AssertClose(RopeReference.Backward(xd, b, t, nh, hs, inv), back, Tolerance, $"backward {at}");
                }
            }
        }
    }

    [Fact]
    public void EmptyShapesAreNoOps()
    {
        using var table = RopeTable.Create(4, 10000, null, 8);
        Rope.Forward(null, table, 0, 8, 2, 4);
        Rope.Backward(null, table, 3, 0, 2, 4);
    }

    [Fact]
    public void BadArgumentsThrowClearErrors()
    {
        var unknown = Assert.Throws<ArgumentException>(() => RopeTable.Create(8, 10000, new RopeScaling("yarn", 4), 16));
        Assert.Contains("'yarn'", unknown.Message);

        Assert.Throws<ArgumentOutOfRangeException>(() => RopeTable.Create(7, 10000, null, 16));

        using var table = RopeTable.Create(8, 10000, null, 16);
        var x = new float[2 * 17 * 8];
        var tooLong = Assert.Throws<ArgumentOutOfRangeException>(() => Apply(x, table, 1, 17, 1, 8));
        Assert.Contains("17", tooLong.Message);
        Assert.Contains("16", tooLong.Message);
        var wrongHead = Assert.Throws<ArgumentException>(() => Apply(x, table, 1, 4, 2, 6));
        Assert.Contains("6", wrongHead.Message);

        table.Dispose();
        Assert.Throws<ObjectDisposedException>(() => Apply(x, table, 1, 4, 1, 8));
    }

    private static int Apply(float[] x, RopeTable table, int b, int t, int nh, int hs)
    {
        fixed (float* xp = x)
        {
            Rope.Forward(xp, table, b, t, nh, hs);
        }

        return 0;
    }

    private static void AssertInv(double[] expected, RopeTable table)
    {
        var actual = table.InverseFrequencies.ToArray();
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(actual[i] - expected[i]) <= InvFreqTolerance * expected[i], $"inv_freq[{i}] = {actual[i]:R}, expected {expected[i]:R}");
        }
    }
}
