namespace Microsoft.ML.Lora.Tensors;

/// <summary>Naive double-precision twin of <see cref="SwiGlu"/>.</summary>
internal static class SwiGluReference
{
    /// <summary>gate (N), up (N) -> h (N) = gate·σ(gate)·up.</summary>
    public static double[] Forward(double[] gate, double[] up)
    {
        var h = new double[gate.Length];
        for (int i = 0; i < h.Length; i++)
        {
            h[i] = gate[i] * Sigmoid(gate[i]) * up[i];
        }

        return h;
    }

    /// <summary>dh (N) -> dgate (N), dup (N).</summary>
    public static (double[] Dgate, double[] Dup) Backward(double[] dh, double[] gate, double[] up)
    {
        var dg = new double[gate.Length];
        var du = new double[gate.Length];
        for (int i = 0; i < dg.Length; i++)
        {
            double s = Sigmoid(gate[i]);

            // d/dg [g·σ(g)] = σ(g) + g·σ(g)·(1 − σ(g)).
            dg[i] = dh[i] * up[i] * (s + gate[i] * s * (1 - s));
            du[i] = dh[i] * gate[i] * s;
        }

        return (dg, du);
    }

    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
}
