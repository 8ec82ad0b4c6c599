namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Packs blocks of the GEMM operands into the panel layout the micro-kernels stream through, resolving
/// transposes and converting storage to F32 on the way.
/// <para>Packed A block, op(A) rows [i0,i0+mc) × k [p0,p0+kc): ⌈mc/mr⌉ micro-panels, each (kc,mr):
/// for every k the mr values of consecutive rows, rows past mc zero.</para>
/// <para>Packed B panel, op(B) k [p0,p0+kc) × columns [j0,j0+nc): ⌈nc/nr⌉ micro-panels, each (kc,nr):
/// for every k the nr values of consecutive columns, columns past nc zero.</para>
/// Zero padding lets edge tiles run the full kernel; padded rows and columns are never stored to C.
/// </summary>
internal static unsafe partial class GemmPack
{
    /// <summary>
    /// Floats a packed buffer needs past its panels: the AVX-512 transposing packers store 16 floats
    /// where the last k of a micro-panel needs only mr.
    /// </summary>
    public const int Slack = 16;

    /// <summary>Packs op(A) rows [i0,i0+mc) × k [p0,p0+kc) into <paramref name="dst"/>; A is (M,K), or (K,M) with transA.</summary>
    public static void PackA(GemmIsa isa, bool transA, float* a, int lda, int i0, int mc, int p0, int kc, int mr, float* dst)
    {
        for (int s = 0; s * mr < mc; s++)
        {
            int rows = Math.Min(mr, mc - (s * mr));
            float* d = dst + ((long)s * mr * kc);
            int i = i0 + (s * mr);
            if (isa == GemmIsa.Avx512 && mr == 12)
            {
                if (transA)
                {
                    if (rows == 12)
                    {
                        CopyPanel12(a + ((long)p0 * lda) + i, lda, kc, d);
                        continue;
                    }
                }
                else
                {
                    TransposePanel<float, F32Element>(a + ((long)i * lda) + p0, lda, rows, kc, mr, d);
                    continue;
                }
            }

            if (transA)
            {
                // op(A)[i+r, p] = a[(p0+p)·lda + i+r]: each k reads `rows` contiguous floats.
                float* src = a + ((long)p0 * lda) + i;
                for (int p = 0; p < kc; p++, src += lda, d += mr)
                {
                    int r = 0;
                    for (; r < rows; r++)
                    {
                        d[r] = src[r];
                    }

                    for (; r < mr; r++)
                    {
                        d[r] = 0f;
                    }
                }
            }
            else
            {
                PanelScalar<float, F32Element>(a + ((long)i * lda) + p0, lda, rows, kc, mr, d);
            }
        }
    }

    /// <summary>Packs op(B) k [p0,p0+kc) × columns [j0,j0+nc) into <paramref name="dst"/>; B is (K,N), or (N,K) with transB.</summary>
    public static void PackB<T, TElement>(GemmIsa isa, bool transB, T* b, int ldb, int p0, int kc, int j0, int nc, int nr, float* dst)
        where T : unmanaged
        where TElement : IGemmElement<T>
    {
        for (int t = 0; t * nr < nc; t++)
        {
            int cols = Math.Min(nr, nc - (t * nr));
            float* d = dst + ((long)t * nr * kc);
            int j = j0 + (t * nr);
            if (transB)
            {
                // op(B)[p, j+c] = b[(j+c)·ldb + p0+p]: a transpose of `cols` rows of B.
                T* src = b + ((long)j * ldb) + p0;
                if (isa == GemmIsa.Avx512 && nr == 32)
                {
                    TransposePanel<T, TElement>(src, ldb, Math.Min(cols, 16), kc, nr, d);
                    TransposePanel<T, TElement>(src + (16L * ldb), ldb, Math.Max(cols - 16, 0), kc, nr, d + 16);
                }
                else if (isa == GemmIsa.Avx512 && nr == 16)
                {
                    TransposePanel<T, TElement>(src, ldb, cols, kc, nr, d);
                }
                else
                {
                    PanelScalar<T, TElement>(src, ldb, cols, kc, nr, d);
                }
            }
            else
            {
                // op(B)[p, j+c] = b[(p0+p)·ldb + j+c]: each k reads `cols` contiguous elements.
                T* src = b + ((long)p0 * ldb) + j;
                if (cols == nr && isa == GemmIsa.Avx512 && nr == 32)
                {
                    CopyPanel32<T, TElement>(src, ldb, kc, d);
                }
                else if (cols == nr && isa is GemmIsa.Avx2 or GemmIsa.Avx512 && nr == 16)
                {
                    CopyPanel16<T, TElement>(src, ldb, kc, d);
                }
                else
                {
                    for (int p = 0; p < kc; p++, src += ldb, d += nr)
                    {
                        int c = 0;
                        for (; c < cols; c++)
                        {
                            d[c] = TElement.Read(src + c);
                        }

                        for (; c < nr; c++)
                        {
                            d[c] = 0f;
                        }
                    }
                }
            }
        }
    }

    /// <summary>
    /// Writes the transpose of `rows` source rows (each kc long, stride ld) into a (kc,width) micro-panel
    /// d: d[p·width + r] = src[r·ld + p], and zero for r in [rows, width).
    /// </summary>
    private static void PanelScalar<T, TElement>(T* src, int ld, int rows, int kc, int width, float* d)
        where T : unmanaged
        where TElement : IGemmElement<T>
    {
        for (int p = 0; p < kc; p++)
        {
            float* dp = d + ((long)p * width);
            int r = 0;
            for (; r < rows; r++)
            {
                dp[r] = TElement.Read(src + ((long)r * ld) + p);
            }

            for (; r < width; r++)
            {
                dp[r] = 0f;
            }
        }
    }
}
