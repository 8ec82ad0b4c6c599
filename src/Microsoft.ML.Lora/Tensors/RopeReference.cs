namespace Microsoft.ML.Lora.Tensors;

/// <summary>Naive double-precision twin of <see cref="Rope"/>: angle = position · inv_freq, computed per element.</summary>
internal static class RopeReference
{
    /// <summary>x (B,T,NH,HS), invFreq (HS/2) -> rotated copy (B,T,NH,HS).</summary>
    public static double[] Forward(double[] x, int b, int t, int nh, int hs, double[] invFreq) => Rotate(x, b, t, nh, hs, invFreq, 1);

    /// <summary>dy (B,T,NH,HS) -> dx (B,T,NH,HS): the transpose of the rotation, i.e. rotation by −angle.</summary>
    public static double[] Backward(double[] dy, int b, int t, int nh, int hs, double[] invFreq) => Rotate(dy, b, t, nh, hs, invFreq, -1);

    private static double[] Rotate(double[] x, int b, int t, int nh, int hs, double[] invFreq, double sign)
    {
        var y = new double[x.Length];
        int half = hs / 2;
        for (int bi = 0; bi < b; bi++)
        {
            for (int ti = 0; ti < t; ti++)
            {
                for (int h = 0; h < nh; h++)
                {
                    int head = ((bi * t + ti) * nh + h) * hs;
                    for (int i = 0; i < half; i++)
                    {
                        double cos = Math.Cos(ti * invFreq[i]);
                        double sin = sign * Math.Sin(ti * invFreq[i]);
                        double x1 = x[head + i], x2 = x[head + half + i];
                        y[head + i] = x1 * cos - x2 * sin;
                        y[head + half + i] = x2 * cos + x1 * sin;
                    }
                }
            }
        }

        return y;
    }
}
