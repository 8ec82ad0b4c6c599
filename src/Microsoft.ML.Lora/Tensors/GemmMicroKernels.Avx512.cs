using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

// Micro-kernels of Gemm: one register tile C (MR,NR) += A (MR,kc) · B (kc,NR) over packed panels
// (see GemmPack). Every kernel walks k from 0 to kc-1 with one fused multiply-add chain per C
// element, starting from C itself when `load` is set, so the reduction order of an element does not
// depend on how the caller blocks or partitions the matrix.
internal static unsafe partial class GemmMicroKernels
{
    /// <summary>
    /// AVX-512 12×32 tile: ap (kc,12) packed A micro-panel, bp (kc,32) packed B micro-panel,
    /// c (12,32) with row stride ldc. 24 zmm accumulators + 2 for B; A is broadcast from memory.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Avx512Tile12x32(int kc, float* ap, float* bp, float* c, nint ldc, bool load)
    {
        Vector512<float> c0_0, c0_1, c1_0, c1_1, c2_0, c2_1, c3_0, c3_1, c4_0, c4_1, c5_0, c5_1, c6_0, c6_1, c7_0, c7_1, c8_0, c8_1, c9_0, c9_1, c10_0, c10_1, c11_0, c11_1;
        if (load)
        {
            c0_0 = Vector512.Load(c + (0 * ldc));
            c0_1 = Vector512.Load(c + (0 * ldc) + 16);
            c1_0 = Vector512.Load(c + (1 * ldc));
            c1_1 = Vector512.Load(c + (1 * ldc) + 16);
            c2_0 = Vector512.Load(c + (2 * ldc));
            c2_1 = Vector512.Load(c + (2 * ldc) + 16);
            c3_0 = Vector512.Load(c + (3 * ldc));
            c3_1 = Vector512.Load(c + (3 * ldc) + 16);
            c4_0 = Vector512.Load(c + (4 * ldc));
            c4_1 = Vector512.Load(c + (4 * ldc) + 16);
            c5_0 = Vector512.Load(c + (5 * ldc));
            c5_1 = Vector512.Load(c + (5 * ldc) + 16);
            c6_0 = Vector512.Load(c + (6 * ldc));
            c6_1 = Vector512.Load(c + (6 * ldc) + 16);
            c7_0 = Vector512.Load(c + (7 * ldc));
            c7_1 = Vector512.Load(c + (7 * ldc) + 16);
            c8_0 = Vector512.Load(c + (8 * ldc));
            c8_1 = Vector512.Load(c + (8 * ldc) + 16);
            c9_0 = Vector512.Load(c + (9 * ldc));
            c9_1 = Vector512.Load(c + (9 * ldc) + 16);
            c10_0 = Vector512.Load(c + (10 * ldc));
            c10_1 = Vector512.Load(c + (10 * ldc) + 16);
            c11_0 = Vector512.Load(c + (11 * ldc));
            c11_1 = Vector512.Load(c + (11 * ldc) + 16);
        }
        else
        {
            c0_0 = c0_1 = Vector512<float>.Zero;
            c1_0 = c1_1 = Vector512<float>.Zero;
            c2_0 = c2_1 = Vector512<float>.Zero;
            c3_0 = c3_1 = Vector512<float>.Zero;
            c4_0 = c4_1 = Vector512<float>.Zero;
            c5_0 = c5_1 = Vector512<float>.Zero;
            c6_0 = c6_1 = Vector512<float>.Zero;
            c7_0 = c7_1 = Vector512<float>.Zero;
            c8_0 = c8_1 = Vector512<float>.Zero;
            c9_0 = c9_1 = Vector512<float>.Zero;
            c10_0 = c10_1 = Vector512<float>.Zero;
            c11_0 = c11_1 = Vector512<float>.Zero;
        }

        for (int p = 0; p < kc; p++)
        {
            Vector512<float> b0 = Vector512.Load(bp);
            Vector512<float> b1 = Vector512.Load(bp + 16);
            Vector512<float> a;
            a = Vector512.Create(ap[0]);
            c0_0 = Avx512F.FusedMultiplyAdd(a, b0, c0_0);
            c0_1 = Avx512F.FusedMultiplyAdd(a, b1, c0_1);
            a = Vector512.Create(ap[1]);
            c1_0 = Avx512F.FusedMultiplyAdd(a, b0, c1_0);
            c1_1 = Avx512F.FusedMultiplyAdd(a, b1, c1_1);
            a = Vector512.Create(ap[2]);
            c2_0 = Avx512F.FusedMultiplyAdd(a, b0, c2_0);
            c2_1 = Avx512F.FusedMultiplyAdd(a, b1, c2_1);
            a = Vector512.Create(ap[3]);
            c3_0 = Avx512F.FusedMultiplyAdd(a, b0, c3_0);
            c3_1 = Avx512F.FusedMultiplyAdd(a, b1, c3_1);
            a = Vector512.Create(ap[4]);
            c4_0 = Avx512F.FusedMultiplyAdd(a, b0, c4_0);
            c4_1 = Avx512F.FusedMultiplyAdd(a, b1, c4_1);
            a = Vector512.Create(ap[5]);
            c5_0 = Avx512F.FusedMultiplyAdd(a, b0, c5_0);
            c5_1 = Avx512F.FusedMultiplyAdd(a, b1, c5_1);
            a = Vector512.Create(ap[6]);
            c6_0 = Avx512F.FusedMultiplyAdd(a, b0, c6_0);
            c6_1 = Avx512F.FusedMultiplyAdd(a, b1, c6_1);
            a = Vector512.Create(ap[7]);
            c7_0 = Avx512F.FusedMultiplyAdd(a, b0, c7_0);
            c7_1 = Avx512F.FusedMultiplyAdd(a, b1, c7_1);
            a = Vector512.Create(ap[8]);
            c8_0 = Avx512F.FusedMultiplyAdd(a, b0, c8_0);
            c8_1 = Avx512F.FusedMultiplyAdd(a, b1, c8_1);
            a = Vector512.Create(ap[9]);
            c9_0 = Avx512F.FusedMultiplyAdd(a, b0, c9_0);
            c9_1 = Avx512F.FusedMultiplyAdd(a, b1, c9_1);
            a = Vector512.Create(ap[10]);
            c10_0 = Avx512F.FusedMultiplyAdd(a, b0, c10_0);
            c10_1 = Avx512F.FusedMultiplyAdd(a, b1, c10_1);
            a = Vector512.Create(ap[11]);
            c11_0 = Avx512F.FusedMultiplyAdd(a, b0, c11_0);
            c11_1 = Avx512F.FusedMultiplyAdd(a, b1, c11_1);
            ap += 12;
            bp += 32;
        }

        c0_0.Store(c + (0 * ldc));
        c0_1.Store(c + (0 * ldc) + 16);
        c1_0.Store(c + (1 * ldc));
        c1_1.Store(c + (1 * ldc) + 16);
        c2_0.Store(c + (2 * ldc));
        c2_1.Store(c + (2 * ldc) + 16);
        c3_0.Store(c + (3 * ldc));
        c3_1.Store(c + (3 * ldc) + 16);
        c4_0.Store(c + (4 * ldc));
        c4_1.Store(c + (4 * ldc) + 16);
        c5_0.Store(c + (5 * ldc));
        c5_1.Store(c + (5 * ldc) + 16);
        c6_0.Store(c + (6 * ldc));
        c6_1.Store(c + (6 * ldc) + 16);
        c7_0.Store(c + (7 * ldc));
        c7_1.Store(c + (7 * ldc) + 16);
        c8_0.Store(c + (8 * ldc));
        c8_1.Store(c + (8 * ldc) + 16);
        c9_0.Store(c + (9 * ldc));
        c9_1.Store(c + (9 * ldc) + 16);
        c10_0.Store(c + (10 * ldc));
        c10_1.Store(c + (10 * ldc) + 16);
        c11_0.Store(c + (11 * ldc));
        c11_1.Store(c + (11 * ldc) + 16);
    }

    /// <summary>
    /// AVX-512 12×16 tile for narrow C (N ≤ 16, e.g. the rank side of a LoRA adapter): ap (kc,12) packed
    /// A micro-panel, bp (kc,16) packed B micro-panel, c (12,16) with row stride ldc. 12 zmm
    /// accumulators: enough independent FMA chains to cover FMA latency on two pipes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Avx512Tile12x16(int kc, float* ap, float* bp, float* c, nint ldc, bool load)
    {
        Vector512<float> c0, c1, c2, c3, c4, c5, c6, c7, c8, c9, c10, c11;
        if (load)
        {
            c0 = Vector512.Load(c + (0 * ldc));
            c1 = Vector512.Load(c + (1 * ldc));
            c2 = Vector512.Load(c + (2 * ldc));
            c3 = Vector512.Load(c + (3 * ldc));
            c4 = Vector512.Load(c + (4 * ldc));
            c5 = Vector512.Load(c + (5 * ldc));
            c6 = Vector512.Load(c + (6 * ldc));
            c7 = Vector512.Load(c + (7 * ldc));
            c8 = Vector512.Load(c + (8 * ldc));
            c9 = Vector512.Load(c + (9 * ldc));
            c10 = Vector512.Load(c + (10 * ldc));
            c11 = Vector512.Load(c + (11 * ldc));
        }
        else
        {
            c0 = c1 = c2 = c3 = c4 = c5 = c6 = c7 = c8 = c9 = c10 = c11 = Vector512<float>.Zero;
        }

        for (int p = 0; p < kc; p++)
        {
            Vector512<float> b0 = Vector512.Load(bp);
            c0 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[0]), b0, c0);
            c1 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[1]), b0, c1);
            c2 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[2]), b0, c2);
            c3 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[3]), b0, c3);
            c4 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[4]), b0, c4);
            c5 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[5]), b0, c5);
            c6 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[6]), b0, c6);
            c7 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[7]), b0, c7);
            c8 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[8]), b0, c8);
            c9 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[9]), b0, c9);
            c10 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[10]), b0, c10);
            c11 = Avx512F.FusedMultiplyAdd(Vector512.Create(ap[11]), b0, c11);
            ap += 12;
            bp += 16;
        }

        c0.Store(c + (0 * ldc));
        c1.Store(c + (1 * ldc));
        c2.Store(c + (2 * ldc));
        c3.Store(c + (3 * ldc));
        c4.Store(c + (4 * ldc));
        c5.Store(c + (5 * ldc));
        c6.Store(c + (6 * ldc));
        c7.Store(c + (7 * ldc));
        c8.Store(c + (8 * ldc));
        c9.Store(c + (9 * ldc));
        c10.Store(c + (10 * ldc));
        c11.Store(c + (11 * ldc));
    }
}
