namespace Microsoft.ML.Lora.Tensors;

/// <summary>Naive double-precision twin of <see cref="Embedding"/>.</summary>
internal static class EmbeddingReference
{
    /// <summary>ids (N), table (V,C) -> out (N,C).</summary>
    public static double[] Forward(int[] ids, double[] table, int c)
    {
        var y = new double[ids.Length * c];
        for (int i = 0; i < ids.Length; i++)
        {
            Array.Copy(table, ids[i] * c, y, i * c, c);
        }

        return y;
    }

    /// <summary>dout (N,C) -> dtable (V,C) = Σ over positions with that id.</summary>
    public static double[] Backward(int[] ids, double[] dout, int c, int v)
    {
        var dtable = new double[v * c];
        for (int i = 0; i < ids.Length; i++)
        {
            for (int j = 0; j < c; j++)
            {
                dtable[ids[i] * c + j] += dout[i * c + j];
            }
        }

        return dtable;
    }
}
