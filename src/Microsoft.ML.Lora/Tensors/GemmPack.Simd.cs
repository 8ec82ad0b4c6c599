using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

// SIMD packers: AVX-512 transposes move 16×16 blocks through registers; copies are AVX-512 or AVX2.
internal static unsafe partial class GemmPack
{
    /// <summary>
    /// Transposes `rows` (≤ 16) source rows of length kc (stride ld) into `own` (≤ 16, ≥ rows) columns
    /// of a (kc,width) micro-panel: d[p·width + r] = src[r·ld + p], zero for r in [rows, own).
    /// Full 16-k blocks store 16 floats per k, so with own &lt; 16 each store spills zeros past the
    /// k's row; the next k (or the caller's <see cref="Slack"/>) overwrites them, so blocks must be
    /// written in ascending k.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void TransposePanel<T, TElement>(T* src, int ld, int rows, int kc, int width, float* d)
        where T : unmanaged
        where TElement : IGemmElement<T>
    {
        int own = Math.Min(width, 16);
        int p = 0;
        for (; p + 16 <= kc; p += 16)
        {
            Vector512<float> v0 = rows > 0 ? TElement.Read16(src + (0L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v1 = rows > 1 ? TElement.Read16(src + (1L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v2 = rows > 2 ? TElement.Read16(src + (2L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v3 = rows > 3 ? TElement.Read16(src + (3L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v4 = rows > 4 ? TElement.Read16(src + (4L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v5 = rows > 5 ? TElement.Read16(src + (5L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v6 = rows > 6 ? TElement.Read16(src + (6L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v7 = rows > 7 ? TElement.Read16(src + (7L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v8 = rows > 8 ? TElement.Read16(src + (8L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v9 = rows > 9 ? TElement.Read16(src + (9L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v10 = rows > 10 ? TElement.Read16(src + (10L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v11 = rows > 11 ? TElement.Read16(src + (11L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v12 = rows > 12 ? TElement.Read16(src + (12L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v13 = rows > 13 ? TElement.Read16(src + (13L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v14 = rows > 14 ? TElement.Read16(src + (14L * ld) + p) : Vector512<float>.Zero;
            Vector512<float> v15 = rows > 15 ? TElement.Read16(src + (15L * ld) + p) : Vector512<float>.Zero;
            Transpose16x16(
                ref v0, ref v1, ref v2, ref v3, ref v4, ref v5, ref v6, ref v7,
                ref v8, ref v9, ref v10, ref v11, ref v12, ref v13, ref v14, ref v15);
            float* dp = d + ((long)p * width);
            v0.Store(dp + (0 * width));
            v1.Store(dp + (1 * width));
            v2.Store(dp + (2 * width));
            v3.Store(dp + (3 * width));
            v4.Store(dp + (4 * width));
            v5.Store(dp + (5 * width));
            v6.Store(dp + (6 * width));
            v7.Store(dp + (7 * width));
            v8.Store(dp + (8 * width));
            v9.Store(dp + (9 * width));
            v10.Store(dp + (10 * width));
            v11.Store(dp + (11 * width));
            v12.Store(dp + (12 * width));
            v13.Store(dp + (13 * width));
            v14.Store(dp + (14 * width));
            v15.Store(dp + (15 * width));
        }

        for (; p < kc; p++)
        {
            float* dp = d + ((long)p * width);
            int r = 0;
            for (; r < rows; r++)
            {
                dp[r] = TElement.Read(src + ((long)r * ld) + p);
            }

            for (; r < own; r++)
            {
                dp[r] = 0f;
            }
        }
    }

    /// <summary>
    /// In-register 16×16 transpose: four butterfly stages, stage h swapping the off-diagonal h×h blocks
    /// of rows r and r+h (the block-recursive transpose), each a pair of two-source permutes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Transpose16x16(
        ref Vector512<float> v0, ref Vector512<float> v1, ref Vector512<float> v2, ref Vector512<float> v3,
        ref Vector512<float> v4, ref Vector512<float> v5, ref Vector512<float> v6, ref Vector512<float> v7,
        ref Vector512<float> v8, ref Vector512<float> v9, ref Vector512<float> v10, ref Vector512<float> v11,
        ref Vector512<float> v12, ref Vector512<float> v13, ref Vector512<float> v14, ref Vector512<float> v15)
    {
        Vector512<int> lo8 = Vector512.Create(0, 1, 2, 3, 4, 5, 6, 7, 16, 17, 18, 19, 20, 21, 22, 23);
        Vector512<int> hi8 = Vector512.Create(8, 9, 10, 11, 12, 13, 14, 15, 24, 25, 26, 27, 28, 29, 30, 31);
        Vector512<int> lo4 = Vector512.Create(0, 1, 2, 3, 16, 17, 18, 19, 8, 9, 10, 11, 24, 25, 26, 27);
        Vector512<int> hi4 = Vector512.Create(4, 5, 6, 7, 20, 21, 22, 23, 12, 13, 14, 15, 28, 29, 30, 31);
        Vector512<int> lo2 = Vector512.Create(0, 1, 16, 17, 4, 5, 20, 21, 8, 9, 24, 25, 12, 13, 28, 29);
        Vector512<int> hi2 = Vector512.Create(2, 3, 18, 19, 6, 7, 22, 23, 10, 11, 26, 27, 14, 15, 30, 31);
        Vector512<int> lo1 = Vector512.Create(0, 16, 2, 18, 4, 20, 6, 22, 8, 24, 10, 26, 12, 28, 14, 30);
        Vector512<int> hi1 = Vector512.Create(1, 17, 3, 19, 5, 21, 7, 23, 9, 25, 11, 27, 13, 29, 15, 31);
        Vector512<float> x, y;
        x = v0; y = v8;
        v0 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v8 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v1; y = v9;
        v1 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v9 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v2; y = v10;
        v2 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v10 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v3; y = v11;
        v3 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v11 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v4; y = v12;
        v4 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v12 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v5; y = v13;
        v5 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v13 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v6; y = v14;
        v6 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v14 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v7; y = v15;
        v7 = Avx512F.PermuteVar16x32x2(x, lo8, y);
        v15 = Avx512F.PermuteVar16x32x2(x, hi8, y);
        x = v0; y = v4;
        v0 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v4 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v1; y = v5;
        v1 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v5 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v2; y = v6;
        v2 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v6 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v3; y = v7;
        v3 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v7 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v8; y = v12;
        v8 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v12 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v9; y = v13;
        v9 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v13 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v10; y = v14;
        v10 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v14 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v11; y = v15;
        v11 = Avx512F.PermuteVar16x32x2(x, lo4, y);
        v15 = Avx512F.PermuteVar16x32x2(x, hi4, y);
        x = v0; y = v2;
        v0 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v2 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v1; y = v3;
        v1 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v3 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v4; y = v6;
        v4 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v6 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v5; y = v7;
        v5 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v7 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v8; y = v10;
        v8 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v10 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v9; y = v11;
        v9 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v11 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v12; y = v14;
        v12 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v14 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v13; y = v15;
        v13 = Avx512F.PermuteVar16x32x2(x, lo2, y);
        v15 = Avx512F.PermuteVar16x32x2(x, hi2, y);
        x = v0; y = v1;
        v0 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v1 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v2; y = v3;
        v2 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v3 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v4; y = v5;
        v4 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v5 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v6; y = v7;
        v6 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v7 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v8; y = v9;
        v8 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v9 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v10; y = v11;
        v10 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v11 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v12; y = v13;
        v12 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v13 = Avx512F.PermuteVar16x32x2(x, hi1, y);
        x = v14; y = v15;
        v14 = Avx512F.PermuteVar16x32x2(x, lo1, y);
        v15 = Avx512F.PermuteVar16x32x2(x, hi1, y);
    }

    /// <summary>(kc,12) micro-panel from 12 contiguous floats per k (A stored (K,M)): d[p·12 + r] = src[p·ld + r].</summary>
    private static void CopyPanel12(float* src, int ld, int kc, float* d)
    {
        for (int p = 0; p < kc; p++, src += ld, d += 12)
        {
            Vector256.Load(src).Store(d);
            Vector128.Load(src + 8).Store(d + 8);
        }
    }

    /// <summary>(kc,32) micro-panel from 32 contiguous elements per k (B stored (K,N)): d[p·32 + c] = src[p·ld + c].</summary>
    private static void CopyPanel32<T, TElement>(T* src, int ld, int kc, float* d)
        where T : unmanaged
        where TElement : IGemmElement<T>
    {
        for (int p = 0; p < kc; p++, src += ld, d += 32)
        {
            TElement.Read16(src).Store(d);
            TElement.Read16(src + 16).Store(d + 16);
        }
    }

    /// <summary>(kc,16) micro-panel from 16 contiguous elements per k, AVX2: d[p·16 + c] = src[p·ld + c].</summary>
    private static void CopyPanel16<T, TElement>(T* src, int ld, int kc, float* d)
        where T : unmanaged
        where TElement : IGemmElement<T>
    {
        for (int p = 0; p < kc; p++, src += ld, d += 16)
        {
            TElement.Read8(src).Store(d);
            TElement.Read8(src + 8).Store(d + 8);
        }
    }
}
