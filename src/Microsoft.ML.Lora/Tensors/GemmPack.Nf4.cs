namespace Microsoft.ML.Lora.Tensors;

// NF4 B: dequantizes while packing, one (kc,nr) micro-panel at a time, so only an L1-sized tile of
// the weight ever exists in F32.
internal static unsafe partial class GemmPack
{
    /// <summary>
    /// Packs op(B) k [p0,p0+kc) × columns [j0,j0+nc) of an NF4 B into <paramref name="dst"/>. B is stored
    /// (K,N), or (N,K) with transB, row-major with rows <paramref name="ld"/> elements long (the tensor is
    /// contiguous, so ld is its row length). <paramref name="scratch"/> holds nr·kc floats when transB.
    /// </summary>
    public static void PackBNf4(GemmIsa isa, bool transB, Nf4Layout layout, byte* data, int ld, int p0, int kc, int j0, int nc, int nr, float* dst, float* scratch)
    {
        for (int t = 0; t * nr < nc; t++)
        {
            int cols = Math.Min(nr, nc - (t * nr));
            float* d = dst + ((long)t * nr * kc);
            int j = j0 + (t * nr);
            if (transB)
            {
                // Rows j..j+cols of B (N,K), k [p0,p0+kc), decoded row-major into scratch (cols,kc),
                // then transposed by the dense packer as if B were that F32 tile.
                for (int r = 0; r < cols; r++)
                {
                    Nf4Decode.Run(layout, data, ((long)(j + r) * ld) + p0, kc, scratch + ((long)r * kc), isa);
                }

                PackB<float, F32Element>(isa, transB: true, scratch, kc, 0, kc, 0, cols, nr, d);
            }
            else
            {
                // Each k's `cols` columns are contiguous in B (K,N) and in the micro-panel: decode in place.
                for (int p = 0; p < kc; p++)
                {
                    float* dp = d + ((long)p * nr);
                    Nf4Decode.Run(layout, data, ((long)(p0 + p) * ld) + j, cols, dp, isa);
                    for (int c = cols; c < nr; c++)
                    {
                        dp[c] = 0f;
                    }
                }
            }
        }
    }
}
