namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// The native AdamW update, per element with no reduction (deterministic); see
/// <see cref="Backend.AdamWUpdate"/> for the formula. Its float64 twin is the training folder's AdamWReference.
/// </summary>
internal static class AdamWKernel
{
    /// <summary>p, g, m, v (same length) -> p, m, v updated in place.</summary>
    public static void Update(Span<float> p, ReadOnlySpan<float> g, Span<float> m, Span<float> v, in AdamWCoefficients c)
    {
        if (g.Length != p.Length || m.Length != p.Length || v.Length != p.Length)
        {
            throw new ArgumentException($"AdamW update: lengths differ (p {p.Length}, g {g.Length}, m {m.Length}, v {v.Length})");
        }

        for (int i = 0; i < p.Length; i++)
        {
            float gi = g[i];
            float mi = (c.Beta1 * m[i]) + (c.OneMinusBeta1 * gi);
            float vi = (c.Beta2 * v[i]) + (c.OneMinusBeta2 * gi * gi);
            m[i] = mi;
            v[i] = vi;
            float denom = (MathF.Sqrt(vi) * c.InvSqrtBiasCorrection2) + c.Epsilon;
            p[i] = (p[i] * c.Decay) - (c.StepSize * mi / denom);
        }
    }
}
