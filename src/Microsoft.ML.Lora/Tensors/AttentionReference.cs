namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Naive double-precision twin of <see cref="Attention"/>: materialises the full (T,T) probabilities of
/// every (b, h), masks j &gt; i, and applies the textbook softmax gradient.
/// </summary>
internal static class AttentionReference
{
    /// <summary>q (B,T,NH,HS), k, v (B,T,NKV,HS) -> o (B,T,NH,HS), lse (B,NH,T).</summary>
    public static (double[] O, double[] Lse) Forward(double[] q, double[] k, double[] v, int b, int t, int nh, int nkv, int hs, int[]? positions = null, int window = 0, double scale = 0, double softcap = 0)
    {
        var o = new double[b * t * nh * hs];
        var lse = new double[b * nh * t];
        for (int bi = 0; bi < b; bi++)
        {
            for (int h = 0; h < nh; h++)
            {
                var (p, rowLse, _) = Probabilities(q, k, bi, h, t, nh, nkv, hs, positions, window, scale, softcap);
                int kvh = h / (nh / nkv);
                for (int i = 0; i < t; i++)
                {
                    lse[(bi * nh + h) * t + i] = rowLse[i];
                    for (int j = 0; j < t; j++)
                    {
                        for (int d = 0; d < hs; d++)
                        {
                            o[Q(bi, i, h, d, t, nh, hs)] += p[i, j] * v[Q(bi, j, kvh, d, t, nkv, hs)];
                        }
                    }
                }
            }
        }

        return (o, lse);
    }

    /// <summary>dout (B,T,NH,HS) -> dq (B,T,NH,HS), dk, dv (B,T,NKV,HS).</summary>
    public static (double[] Dq, double[] Dk, double[] Dv) Backward(double[] dout, double[] q, double[] k, double[] v, int b, int t, int nh, int nkv, int hs, int[]? positions = null, int window = 0, double scale = 0, double softcap = 0)
    {
        var dq = new double[q.Length];
        var dk = new double[k.Length];
        var dv = new double[v.Length];
        for (int bi = 0; bi < b; bi++)
        {
            for (int h = 0; h < nh; h++)
            {
                var (p, _, slope) = Probabilities(q, k, bi, h, t, nh, nkv, hs, positions, window, scale, softcap);
                int kvh = h / (nh / nkv);
                for (int i = 0; i < t; i++)
                {
                    // dP_ij = dO_i·v_j; dS_ij = P_ij·(dP_ij − Σ_l P_il·dP_il).
                    var dp = new double[t];
                    double rowDot = 0;
                    for (int j = 0; j < t; j++)
                    {
                        for (int d = 0; d < hs; d++)
                        {
                            dp[j] += dout[Q(bi, i, h, d, t, nh, hs)] * v[Q(bi, j, kvh, d, t, nkv, hs)];
                        }

                        rowDot += p[i, j] * dp[j];
                    }

                    for (int j = 0; j < t; j++)
                    {
                        double ds = p[i, j] * (dp[j] - rowDot) * slope[i, j];
                        for (int d = 0; d < hs; d++)
                        {
                            dq[Q(bi, i, h, d, t, nh, hs)] += ds * k[Q(bi, j, kvh, d, t, nkv, hs)];
                            dk[Q(bi, j, kvh, d, t, nkv, hs)] += ds * q[Q(bi, i, h, d, t, nh, hs)];
                            dv[Q(bi, j, kvh, d, t, nkv, hs)] += p[i, j] * dout[Q(bi, i, h, d, t, nh, hs)];
                        }
                    }
                }
            }
        }

        return (dq, dk, dv);
    }

    // Causal softmax of scale·q_i·k_j over lo(i) ≤ j ≤ i (P is 0 elsewhere), and its log-sum-exp per row;
    // lo(i) = i − positions[i] for packed rows, else 0; with a sliding window, at least i − window + 1.
    // Slope: ∂logit/∂(q·k), the scale, times 1 − tanh² when the logits are soft-capped.
    private static (double[,] P, double[] Lse, double[,] Slope) Probabilities(double[] q, double[] k, int bi, int h, int t, int nh, int nkv, int hs, int[]? positions, int window, double scale, double softcap)
    {
        int kvh = h / (nh / nkv);
        double c = scale != 0 ? scale : 1 / Math.Sqrt(hs);
        var p = new double[t, t];
        var slope = new double[t, t];
        var lse = new double[t];
        for (int i = 0; i < t; i++)
        {
            int lo = positions is null ? 0 : i - positions[(bi * t) + i];
            if (window > 0)
            {
                lo = Math.Max(lo, i - window + 1);
            }

            double max = double.NegativeInfinity;
            for (int j = lo; j <= i; j++)
            {
                double s = 0;
                for (int d = 0; d < hs; d++)
                {
                    s += q[Q(bi, i, h, d, t, nh, hs)] * k[Q(bi, j, kvh, d, t, nkv, hs)];
                }

                p[i, j] = s * c;
                slope[i, j] = c;
                if (softcap > 0)
                {
                    double th = Math.Tanh(p[i, j] / softcap);
                    p[i, j] = softcap * th;
                    slope[i, j] = c * (1 - (th * th));
                }

                max = Math.Max(max, p[i, j]);
            }

            double sum = 0;
            for (int j = lo; j <= i; j++)
            {
                sum += Math.Exp(p[i, j] - max);
            }

            lse[i] = max + Math.Log(sum);
            for (int j = lo; j <= i; j++)
            {
                p[i, j] = Math.Exp(p[i, j] - lse[i]);
            }
        }

        return (p, lse, slope);
    }

    // Flat index of (b, t, head, d) in a (B,T,heads,HS) tensor.
    private static int Q(int bi, int ti, int head, int d, int t, int heads, int hs) => ((bi * t + ti) * heads + head) * hs + d;
}
