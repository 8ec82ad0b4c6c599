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
    /// AVX2 6×16 tile: ap (kc,6) packed A micro-panel, bp (kc,16) packed B micro-panel,
    /// c (6,16) with row stride ldc. 12 ymm accumulators + 2 for B + 1 broadcast of A = 15 of 16 registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void Avx2Tile6x16(int kc, float* ap, float* bp, float* c, nint ldc, bool load)
    {
        Vector256<float> c0_0, c0_1, c1_0, c1_1, c2_0, c2_1, c3_0, c3_1, c4_0, c4_1, c5_0, c5_1;
        if (load)
        {
            c0_0 = Vector256.Load(c + (0 * ldc));
            c0_1 = Vector256.Load(c + (0 * ldc) + 8);
            c1_0 = Vector256.Load(c + (1 * ldc));
            c1_1 = Vector256.Load(c + (1 * ldc) + 8);
            c2_0 = Vector256.Load(c + (2 * ldc));
            c2_1 = Vector256.Load(c + (2 * ldc) + 8);
            c3_0 = Vector256.Load(c + (3 * ldc));
            c3_1 = Vector256.Load(c + (3 * ldc) + 8);
            c4_0 = Vector256.Load(c + (4 * ldc));
            c4_1 = Vector256.Load(c + (4 * ldc) + 8);
            c5_0 = Vector256.Load(c + (5 * ldc));
            c5_1 = Vector256.Load(c + (5 * ldc) + 8);
        }
        else
        {
            c0_0 = c0_1 = Vector256<float>.Zero;
            c1_0 = c1_1 = Vector256<float>.Zero;
            c2_0 = c2_1 = Vector256<float>.Zero;
            c3_0 = c3_1 = Vector256<float>.Zero;
            c4_0 = c4_1 = Vector256<float>.Zero;
            c5_0 = c5_1 = Vector256<float>.Zero;
        }

        for (int p = 0; p < kc; p++)
        {
            Vector256<float> b0 = Vector256.Load(bp);
            Vector256<float> b1 = Vector256.Load(bp + 8);
            Vector256<float> a;
            a = Vector256.Create(ap[0]);
            c0_0 = Fma.MultiplyAdd(a, b0, c0_0);
            c0_1 = Fma.MultiplyAdd(a, b1, c0_1);
            a = Vector256.Create(ap[1]);
            c1_0 = Fma.MultiplyAdd(a, b0, c1_0);
            c1_1 = Fma.MultiplyAdd(a, b1, c1_1);
            a = Vector256.Create(ap[2]);
            c2_0 = Fma.MultiplyAdd(a, b0, c2_0);
            c2_1 = Fma.MultiplyAdd(a, b1, c2_1);
            a = Vector256.Create(ap[3]);
            c3_0 = Fma.MultiplyAdd(a, b0, c3_0);
            c3_1 = Fma.MultiplyAdd(a, b1, c3_1);
            a = Vector256.Create(ap[4]);
            c4_0 = Fma.MultiplyAdd(a, b0, c4_0);
            c4_1 = Fma.MultiplyAdd(a, b1, c4_1);
            a = Vector256.Create(ap[5]);
            c5_0 = Fma.MultiplyAdd(a, b0, c5_0);
            c5_1 = Fma.MultiplyAdd(a, b1, c5_1);
            ap += 6;
            bp += 16;
        }

        c0_0.Store(c + (0 * ldc));
        c0_1.Store(c + (0 * ldc) + 8);
        c1_0.Store(c + (1 * ldc));
        c1_1.Store(c + (1 * ldc) + 8);
        c2_0.Store(c + (2 * ldc));
        c2_1.Store(c + (2 * ldc) + 8);
        c3_0.Store(c + (3 * ldc));
        c3_1.Store(c + (3 * ldc) + 8);
        c4_0.Store(c + (4 * ldc));
        c4_1.Store(c + (4 * ldc) + 8);
        c5_0.Store(c + (5 * ldc));
        c5_1.Store(c + (5 * ldc) + 8);
    }
}
