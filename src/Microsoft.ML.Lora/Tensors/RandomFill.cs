namespace Microsoft.ML.Lora.Tensors;

/// <summary>Seeded normal samples for initialisation (Box–Muller; deterministic for a seeded <see cref="Random"/>).</summary>
public static class RandomFill
{
    /// <summary>One N(0, 1) sample; 1 − u keeps the logarithm's argument in (0, 1].</summary>
    public static double NextGaussian(Random random)
    {
        double u1 = 1.0 - random.NextDouble(), u2 = random.NextDouble();
        return Math.Sqrt(-2.0 * Math.Log(u1)) * Math.Cos(2.0 * Math.PI * u2);
    }

    /// <summary>Fills <paramref name="span"/> with N(0, std²) samples.</summary>
    public static void Normal(Span<float> span, Random random, double std)
    {
        for (int i = 0; i < span.Length; i++)
        {
            span[i] = (float)(std * NextGaussian(random));
        }
    }
}
