namespace Microsoft.ML.Lora.Tensors;

/// <summary>Naive double-precision twin of <see cref="RmsNorm"/>, kept obvious on purpose for tests.</summary>
internal static class RmsNormReference
{
    /// <summary>x (N,C), weight (C) -> y (N,C), rstd (N). An empty row has mean 0.</summary>
    public static (double[] Y, double[] Rstd) Forward(double[] x, double[] weight, int n, int c, double eps)
    {
        var y = new double[n * c];
        var rstd = new double[n];
        for (int i = 0; i < n; i++)
        {
            double ss = 0;
            for (int j = 0; j < c; j++)
            {
                ss += x[i * c + j] * x[i * c + j];
            }

            rstd[i] = 1 / Math.Sqrt((c == 0 ? 0 : ss / c) + eps);
            for (int j = 0; j < c; j++)
            {
                y[i * c + j] = x[i * c + j] * rstd[i] * weight[j];
            }
        }

        return (y, rstd);
    }

    /// <summary>dy (N,C) -> dx (N,C), dweight (C).</summary>
    public static (double[] Dx, double[] Dweight) Backward(double[] dy, double[] x, double[] weight, int n, int c, double eps)
    {
        var (_, rstd) = Forward(x, weight, n, c, eps);
        var dx = new double[n * c];
        var dw = new double[c];
        for (int i = 0; i < n; i++)
        {
            // y_j = w_j·x_j·r with ∂r/∂x_k = −r³·x_k/C.
            double dot = 0;
            for (int j = 0; j < c; j++)
            {
                dot += dy[i * c + j] * weight[j] * x[i * c + j];
                dw[j] += dy[i * c + j] * x[i * c + j] * rstd[i];
            }

            double r = rstd[i];
            for (int k = 0; k < c; k++)
            {
                dx[i * c + k] = dy[i * c + k] * weight[k] * r - dot * r * r * r * x[i * c + k] / c;
            }
        }

        return (dx, dw);
    }
}
