namespace Microsoft.ML.Lora.Tensors;

/// <summary>Naive double-precision twin of <see cref="CrossEntropy"/>.</summary>
internal static class CrossEntropyReference
{
    /// <summary>logits (N,V), targets (N) -> losses (N), 0 for ignored rows.</summary>
    public static double[] Forward(double[] logits, int[] targets, int n, int v)
    {
        var losses = new double[n];
        for (int i = 0; i < n; i++)
        {
            if (targets[i] != CrossEntropy.IgnoreIndex)
            {
                losses[i] = LogSumExp(logits, i * v, v) - logits[i * v + targets[i]];
            }
        }

        return losses;
    }

    /// <summary>Gradient of gradScale · Σ losses: dlogits (N,V) = (softmax − onehot)·gradScale, 0 for ignored rows.</summary>
    public static double[] Backward(double[] logits, int[] targets, int n, int v, double gradScale)
    {
        var d = new double[n * v];
        for (int i = 0; i < n; i++)
        {
            if (targets[i] == CrossEntropy.IgnoreIndex)
            {
                continue;
            }

            double lse = LogSumExp(logits, i * v, v);
            for (int j = 0; j < v; j++)
            {
                d[i * v + j] = (Math.Exp(logits[i * v + j] - lse) - (j == targets[i] ? 1 : 0)) * gradScale;
            }
        }

        return d;
    }

    private static double LogSumExp(double[] x, int offset, int count)
    {
        double max = double.NegativeInfinity;
        for (int j = 0; j < count; j++)
        {
            max = Math.Max(max, x[offset + j]);
        }

        double sum = 0;
        for (int j = 0; j < count; j++)
        {
            sum += Math.Exp(x[offset + j] - max);
        }

        return max + Math.Log(sum);
    }
}
