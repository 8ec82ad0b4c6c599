namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Naive float64 AdamW, written straight from the paper's bias-corrected form
/// (m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ), p ← p(1−lr·λ) − lr·m̂/(√v̂ + ε)); the reference <see cref="AdamW"/> is tested against.
/// </summary>
internal static class AdamWReference
{
    /// <summary>One update at 1-based step <paramref name="t"/>.</summary>
    public static void Update(double[] p, double[] g, double[] m, double[] v, long t, double lr, double beta1, double beta2, double epsilon, double weightDecay)
    {
        for (int i = 0; i < p.Length; i++)
        {
            m[i] = (beta1 * m[i]) + ((1 - beta1) * g[i]);
            v[i] = (beta2 * v[i]) + ((1 - beta2) * g[i] * g[i]);
            double mHat = m[i] / (1 - Math.Pow(beta1, t));
            double vHat = v[i] / (1 - Math.Pow(beta2, t));
            p[i] -= lr * weightDecay * p[i];
            p[i] -= lr * mHat / (Math.Sqrt(vHat) + epsilon);
        }
    }
}
