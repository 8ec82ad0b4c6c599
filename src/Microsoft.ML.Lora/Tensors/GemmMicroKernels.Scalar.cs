using System.Runtime.CompilerServices;

namespace Microsoft.ML.Lora.Tensors;

internal static unsafe partial class GemmMicroKernels
{
    /// <summary>
    /// Portable 4×4 tile: ap (kc,4) packed A micro-panel, bp (kc,4) packed B micro-panel, c (4,4) with
    /// row stride ldc. Sixteen scalar accumulators fit the 16 general vector registers of x64 and arm64.
    /// Uses separate multiply and add: a software fused multiply-add would be far slower where the
    /// hardware has none, and this path exists for such CPUs.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static void ScalarTile4x4(int kc, float* ap, float* bp, float* c, nint ldc, bool load)
    {
        float* c0 = c, c1 = c + ldc, c2 = c + (2 * ldc), c3 = c + (3 * ldc);
        float c00 = 0, c01 = 0, c02 = 0, c03 = 0, c10 = 0, c11 = 0, c12 = 0, c13 = 0;
        float c20 = 0, c21 = 0, c22 = 0, c23 = 0, c30 = 0, c31 = 0, c32 = 0, c33 = 0;
        if (load)
        {
            c00 = c0[0]; c01 = c0[1]; c02 = c0[2]; c03 = c0[3];
            c10 = c1[0]; c11 = c1[1]; c12 = c1[2]; c13 = c1[3];
            c20 = c2[0]; c21 = c2[1]; c22 = c2[2]; c23 = c2[3];
            c30 = c3[0]; c31 = c3[1]; c32 = c3[2]; c33 = c3[3];
        }

        for (int p = 0; p < kc; p++)
        {
            float b0 = bp[0], b1 = bp[1], b2 = bp[2], b3 = bp[3];
            float a = ap[0];
            c00 += a * b0; c01 += a * b1; c02 += a * b2; c03 += a * b3;
            a = ap[1];
            c10 += a * b0; c11 += a * b1; c12 += a * b2; c13 += a * b3;
            a = ap[2];
            c20 += a * b0; c21 += a * b1; c22 += a * b2; c23 += a * b3;
            a = ap[3];
            c30 += a * b0; c31 += a * b1; c32 += a * b2; c33 += a * b3;
            ap += 4;
            bp += 4;
        }

        c0[0] = c00; c0[1] = c01; c0[2] = c02; c0[3] = c03;
        c1[0] = c10; c1[1] = c11; c1[2] = c12; c1[3] = c13;
        c2[0] = c20; c2[1] = c21; c2[2] = c22; c2[3] = c23;
        c3[0] = c30; c3[1] = c31; c3[2] = c32; c3[3] = c33;
    }
}
