using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// PiSSA initialisation (Meng et al., 2024): the adapter takes the weight's top-r singular part,
/// the base keeps the rest. The top-r SVD is computed by randomized subspace iteration in double
/// (Halko, Martinsson and Tropp, 2011, oversampling 8), iterated until the top-r singular values
/// change by less than 1e-12 relative: a flat spectrum (random weights) needs tens of iterations,
/// a trained weight's decaying spectrum a few.
/// </summary>
internal static class Pissa
{
    private const int Oversampling = 8;
    private const int MaxPowerIterations = 200;
    private const double Converged = 1e-12;

    /// <summary>A = √Σ·Vᵀ/√s (r, d_in), B = U·√Σ/√s (d_out, r); the weight becomes W − s·B·A.</summary>
    public static (Tensor A, Tensor B) Initialize(Linear linear, int rank, float scale, Random random)
    {
        if (linear.Weight.Value.DType != DType.F32)
        {
            throw new NotSupportedException($"{linear.Name}: PiSSA init rewrites the base weight and needs it in F32; got {linear.Weight.Value.DType} (load the model with dtype f32)");
        }

        int m = linear.OutFeatures, n = linear.InFeatures;
        if (rank > Math.Min(m, n))
        {
            throw new ArgumentOutOfRangeException(nameof(rank), rank, $"{linear.Name}: PiSSA rank {rank} exceeds min(out, in) = {Math.Min(m, n)}");
        }

        using var hostWeight = linear.Weight.Value.IsHost ? null : linear.Weight.Value.ToHost();
        var w = (hostWeight ?? linear.Weight.Value).AsF32();
        var (u, s, v) = TopSingular(w, m, n, rank, random);
        var a = Tensor.Empty(DType.F32, rank, n);
        var b = Tensor.Empty(DType.F32, m, rank);
        var aSpan = a.AsF32();
        var bSpan = b.AsF32();
        for (int k = 0; k < rank; k++)
        {
            double root = Math.Sqrt(s[k] / scale);
            for (int j = 0; j < n; j++)
            {
                aSpan[(k * n) + j] = (float)(root * v[(j * rank) + k]);
            }

            for (int i = 0; i < m; i++)
            {
                bSpan[(i * rank) + k] = (float)(root * u[(i * rank) + k]);
            }
        }

        // Residual in double from the rounded A and B, so that W_res + s·B·A reproduces W to F32 rounding.
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double dot = 0;
                for (int k = 0; k < rank; k++)
                {
                    dot += (double)bSpan[(i * rank) + k] * aSpan[(k * n) + j];
                }

                w[(i * n) + j] = (float)(w[(i * n) + j] - (scale * dot));
            }
        }

        if (hostWeight is not null)
        {
            linear.Weight.Value.Backend.CopyFromHost(hostWeight, linear.Weight.Value);
        }

        return (a, b);
    }

    /// <summary>Top-r singular triplets of W (m,n): U (m,r), σ (r) descending, V (n,r), all row-major.</summary>
    internal static (double[] U, double[] S, double[] V) TopSingular(ReadOnlySpan<float> w, int m, int n, int r, Random random)
    {
        int p = Math.Min(r + Oversampling, Math.Min(m, n));
        var omega = new double[n * p];
        for (int i = 0; i < omega.Length; i++)
        {
            omega[i] = RandomFill.NextGaussian(random);
        }

        var q = MulW(w, m, n, omega, p);
        Orthonormalize(q, m, p);
        var (small, gram) = Project(w, m, n, q, p);
        double[] previous = TopValues(gram, p, r);
        for (int it = 0; it < MaxPowerIterations; it++)
        {
            var z = MulWt(w, m, n, q, p);
            Orthonormalize(z, n, p);
            q = MulW(w, m, n, z, p);
            Orthonormalize(q, m, p);
            (small, gram) = Project(w, m, n, q, p);
            double[] current = TopValues(gram, p, r);
            bool done = current.Zip(previous).All(static t => Math.Abs(t.First - t.Second) <= Converged * Math.Max(t.First, double.Epsilon));
            previous = current;
            if (done)
            {
                break;
            }
        }

        var (lambda, vecs) = SymmetricEigen(gram, p);
        var order = Enumerable.Range(0, p).OrderByDescending(i => lambda[i]).Take(r).ToArray();
        var uOut = new double[m * r];
        var sOut = new double[r];
        var vOut = new double[n * r];
        for (int k = 0; k < r; k++)
        {
            int e = order[k];
            double sigma = Math.Sqrt(Math.Max(lambda[e], 0));
            sOut[k] = sigma;
            for (int i = 0; i < m; i++)
            {
                double sum = 0;
                for (int c = 0; c < p; c++)
                {
                    sum += q[(i * p) + c] * vecs[(c * p) + e];
                }

                uOut[(i * r) + k] = sum;
            }

            for (int j = 0; j < n; j++)
            {
                double sum = 0;
                for (int c = 0; c < p; c++)
                {
                    sum += small[(c * n) + j] * vecs[(c * p) + e];
                }

                vOut[(j * r) + k] = sigma > 0 ? sum / sigma : 0;
            }
        }

        return (uOut, sOut, vOut);
    }

    // Small = Qᵀ·W (p,n) and its Gram matrix Small·Smallᵀ (p,p) = Uc·Λ·Ucᵀ, so σ = √λ.
    private static (double[] Small, double[] Gram) Project(ReadOnlySpan<float> w, int m, int n, double[] q, int p)
    {
        var small = new double[p * n];
        for (int k = 0; k < p; k++)
        {
            for (int i = 0; i < m; i++)
            {
                double qik = q[(i * p) + k];
                for (int j = 0; j < n; j++)
                {
                    small[(k * n) + j] += qik * w[(i * n) + j];
                }
            }
        }

        var gram = new double[p * p];
        for (int a = 0; a < p; a++)
        {
            for (int b = a; b < p; b++)
            {
                double dot = 0;
                for (int j = 0; j < n; j++)
                {
                    dot += small[(a * n) + j] * small[(b * n) + j];
                }

                gram[(a * p) + b] = gram[(b * p) + a] = dot;
            }
        }

        return (small, gram);
    }

    private static double[] TopValues(double[] gram, int p, int r) =>
        SymmetricEigen(gram, p).Values.OrderDescending().Take(r).ToArray();

    /// <summary>Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations: eigenvalues and column eigenvectors.</summary>
    internal static (double[] Values, double[] Vectors) SymmetricEigen(double[] matrix, int n)
    {
        var a = (double[])matrix.Clone();
        var v = new double[n * n];
        for (int i = 0; i < n; i++)
        {
            v[(i * n) + i] = 1;
        }

        for (int sweep = 0; sweep < 100; sweep++)
        {
            double off = 0, diag = 0;
            for (int i = 0; i < n; i++)
            {
                diag += a[(i * n) + i] * a[(i * n) + i];
                for (int j = i + 1; j < n; j++)
                {
                    off += a[(i * n) + j] * a[(i * n) + j];
                }
            }

            if (off <= 1e-30 * Math.Max(diag, double.Epsilon))
            {
                break;
            }

            for (int pi = 0; pi < n - 1; pi++)
            {
                for (int qi = pi + 1; qi < n; qi++)
                {
                    double apq = a[(pi * n) + qi];
                    if (apq == 0)
                    {
                        continue;
                    }

                    double theta = (a[(qi * n) + qi] - a[(pi * n) + pi]) / (2 * apq);
                    double t = Math.Sign(theta == 0 ? 1 : theta) / (Math.Abs(theta) + Math.Sqrt((theta * theta) + 1));
                    double c = 1 / Math.Sqrt((t * t) + 1), s = t * c;
                    for (int k = 0; k < n; k++)
                    {
                        double akp = a[(k * n) + pi], akq = a[(k * n) + qi];
                        a[(k * n) + pi] = (c * akp) - (s * akq);
                        a[(k * n) + qi] = (s * akp) + (c * akq);
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double apk = a[(pi * n) + k], aqk = a[(qi * n) + k];
                        a[(pi * n) + k] = (c * apk) - (s * aqk);
                        a[(qi * n) + k] = (s * apk) + (c * aqk);
                    }

                    for (int k = 0; k < n; k++)
                    {
                        double vkp = v[(k * n) + pi], vkq = v[(k * n) + qi];
                        v[(k * n) + pi] = (c * vkp) - (s * vkq);
                        v[(k * n) + qi] = (s * vkp) + (c * vkq);
                    }
                }
            }
        }

        var values = new double[n];
        for (int i = 0; i < n; i++)
        {
            values[i] = a[(i * n) + i];
        }

        return (values, v);
    }

    // W (m,n) · X (n,p) -> (m,p)
    private static double[] MulW(ReadOnlySpan<float> w, int m, int n, double[] x, int p)
    {
        var y = new double[m * p];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double wij = w[(i * n) + j];
                for (int k = 0; k < p; k++)
                {
                    y[(i * p) + k] += wij * x[(j * p) + k];
                }
            }
        }

        return y;
    }

    // Wᵀ (n,m) · X (m,p) -> (n,p)
    private static double[] MulWt(ReadOnlySpan<float> w, int m, int n, double[] x, int p)
    {
        var y = new double[n * p];
        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < n; j++)
            {
                double wij = w[(i * n) + j];
                for (int k = 0; k < p; k++)
                {
                    y[(j * p) + k] += wij * x[(i * p) + k];
                }
            }
        }

        return y;
    }

    // Modified Gram–Schmidt on the p columns of X (rows, p), twice for stability.
    private static void Orthonormalize(double[] x, int rows, int p)
    {
        for (int pass = 0; pass < 2; pass++)
        {
            for (int k = 0; k < p; k++)
            {
                for (int prev = 0; prev < k; prev++)
                {
                    double dot = 0;
                    for (int i = 0; i < rows; i++)
                    {
                        dot += x[(i * p) + k] * x[(i * p) + prev];
                    }

                    for (int i = 0; i < rows; i++)
                    {
                        x[(i * p) + k] -= dot * x[(i * p) + prev];
                    }
                }

                double norm = 0;
                for (int i = 0; i < rows; i++)
                {
                    norm += x[(i * p) + k] * x[(i * p) + k];
                }

                norm = Math.Sqrt(norm);
                for (int i = 0; i < rows; i++)
                {
                    x[(i * p) + k] = norm > 0 ? x[(i * p) + k] / norm : 0;
                }
            }
        }
    }
}
