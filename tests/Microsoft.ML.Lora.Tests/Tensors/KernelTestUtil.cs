using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>Tests that change the native thread count (<see cref="Backend.Threads"/>) run alone, after the parallel ones.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class CpuParallelThreadsCollection
{
    public const string Name = "CpuParallel.Threads";
}

/// <summary>Random inputs, float/double conversion and comparisons shared by the kernel tests.</summary>
internal static class KernelTestUtil
{
    /// <summary>Uniform values in [−scale, scale), rounded to float so the float kernel and its double twin see the same inputs.</summary>
    public static double[] RandomArray(Random rng, int length, double scale = 1)
    {
        var a = new double[length];
        for (int i = 0; i < length; i++)
        {
            a[i] = (float)((rng.NextDouble() * 2 - 1) * scale);
        }

        return a;
    }

    public static float[] ToFloat(double[] a) => Array.ConvertAll(a, x => (float)x);

    public static double[] ToDouble(float[] a) => Array.ConvertAll(a, x => (double)x);

    public static double Dot(double[] a, double[] b)
    {
        Assert.Equal(a.Length, b.Length);
        double s = 0;
        for (int i = 0; i < a.Length; i++)
        {
            s += a[i] * b[i];
        }

        return s;
    }

    /// <summary>
    /// Every element within <paramref name="rtol"/>·(|expected| + rms(expected)): relative where values are
    /// large, with the tensor's own RMS as the floor for elements that cancel to near zero.
    /// </summary>
    public static void AssertClose(double[] expected, ReadOnlySpan<float> actual, double rtol, string what) => AssertClose(expected, ToDouble(actual.ToArray()), rtol, what);

    /// <inheritdoc cref="AssertClose(double[], ReadOnlySpan{float}, double, string)"/>
    public static void AssertClose(double[] expected, double[] actual, double rtol, string what) => AssertClose(expected, actual, rtol, Rms(expected), what);

    /// <summary>
    /// Every element within <paramref name="rtol"/>·(|expected| + <paramref name="floor"/>), for results that
    /// are differences of larger terms: float error scales with the terms, so the floor is their size.
    /// </summary>
    public static void AssertClose(double[] expected, ReadOnlySpan<float> actual, double rtol, double floor, string what) => AssertClose(expected, ToDouble(actual.ToArray()), rtol, floor, what);

    public static double Rms(double[] a)
    {
        double ss = 0;
        foreach (double e in a)
        {
            ss += e * e;
        }

        return a.Length == 0 ? 0 : Math.Sqrt(ss / a.Length);
    }

    private static void AssertClose(double[] expected, double[] actual, double rtol, double floor, string what)
    {
        Assert.True(expected.Length == actual.Length, $"{what}: length {actual.Length}, expected {expected.Length}");
        double rms = floor;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs(actual[i] - expected[i]);
            double bound = rtol * (Math.Abs(expected[i]) + rms);
            if (!(err <= bound) && !(actual[i] == expected[i]))
            {
                Assert.Fail($"{what}: element {i} is {actual[i]:R}, expected {expected[i]:R} (error {err:E2} > bound {bound:E2}, rtol {rtol:E1})");
            }
        }
    }

    public static void AssertBitIdentical(float[] expected, float[] actual, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            if (BitConverter.SingleToInt32Bits(expected[i]) != BitConverter.SingleToInt32Bits(actual[i]))
            {
                Assert.Fail($"{what}: element {i} differs: {actual[i]:R} vs {expected[i]:R}");
            }
        }
    }

    /// <summary>Runs <paramref name="body"/> with <see cref="CpuParallel.Threads"/> set, restoring it afterwards.</summary>
    public static T WithThreads<T>(int threads, Func<T> body)
    {
        int saved = CpuParallel.Threads;
        CpuParallel.Threads = threads;
        try
        {
            return body();
        }
        finally
        {
            CpuParallel.Threads = saved;
        }
    }
}

/// <summary>Central finite differences in double, the independent check of every Backward.</summary>
internal static class FiniteDifference
{
    /// <summary>
    /// Tolerance for analytic vs numeric gradients on O(1) inputs with step <see cref="Step"/>: truncation
    /// error is O(h²·f‴) ≈ 1e-10 and round-off O(ε·|f|/h) ≈ 1e-10, so 1e-6 leaves four orders of headroom
    /// while any wrong term in a gradient formula (an O(1) error) fails by orders of magnitude.
    /// </summary>
    public const double Tolerance = 1e-6;

    public const double Step = 1e-5;

    /// <summary>∂f/∂x_i ≈ (f(x + h·e_i) − f(x − h·e_i)) / 2h for every i.</summary>
    public static double[] Gradient(Func<double[], double> f, double[] x)
    {
        var g = new double[x.Length];
        var probe = (double[])x.Clone();
        for (int i = 0; i < x.Length; i++)
        {
            probe[i] = x[i] + Step;
            double plus = f(probe);
            probe[i] = x[i] - Step;
            double minus = f(probe);
            probe[i] = x[i];
            g[i] = (plus - minus) / (2 * Step);
        }

        return g;
    }

    /// <summary>Checks <paramref name="analytic"/> = ∂/∂x Σ weights·forward(x).</summary>
    public static void Check(Func<double[], double[]> forward, double[] x, double[] weights, double[] analytic, string what)
    {
        var numeric = Gradient(p => KernelTestUtil.Dot(weights, forward(p)), x);
        KernelTestUtil.AssertClose(numeric, analytic, Tolerance, what);
    }
}
