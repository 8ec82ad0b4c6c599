using System.Runtime.Intrinsics.X86;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>The blocked loops of <see cref="Gemm"/> over one rectangle of C, on one thread.</summary>
internal static unsafe class GemmDriver
{
    /// <summary>
    /// C rows [m0,m1) × columns [n0,n1) of <paramref name="job"/>. Packing buffers come from
    /// <see cref="NativePool"/> and go back before returning.
    /// </summary>
    public static void Block<T, TPackB>(in GemmJob<T> job, int m0, int m1, int n0, int n1)
        where T : unmanaged
        where TPackB : IGemmPackB<T>
    {
        GemmConfig cfg = job.Config;
        GemmBlocking blk = job.Blocking;
        int mr = cfg.Mr, nr = cfg.Nr;
        int mcMax = Math.Min(blk.Mc, RoundUp(m1 - m0, mr));
        int ncMax = Math.Min(blk.Nc, RoundUp(n1 - n0, nr));
        int kcMax = Math.Min(blk.Kc, job.K);
        nuint aBytes = (nuint)(((long)mcMax * kcMax) + GemmPack.Slack) * sizeof(float);
        nuint bBytes = (nuint)(((long)ncMax * kcMax) + GemmPack.Slack) * sizeof(float);
        float* aPack = (float*)NativePool.Rent(aBytes);
        float* bPack = (float*)NativePool.Rent(bBytes);
        nuint scratchBytes = (nuint)TPackB.ScratchFloats(job, kcMax) * sizeof(float);
        float* scratch = scratchBytes == 0 ? null : (float*)NativePool.Rent(scratchBytes);
        float* edge = stackalloc float[mr * nr];
        var tile = cfg.Tile;
        try
        {
            for (int jc = n0; jc < n1; jc += blk.Nc)
            {
                int nc = Math.Min(blk.Nc, n1 - jc);
                for (int pc = 0; pc < job.K; pc += blk.Kc)
                {
                    int kc = Math.Min(blk.Kc, job.K - pc);
                    bool load = job.Accumulate || pc > 0;
                    TPackB.Pack(job, pc, kc, jc, nc, bPack, scratch);
                    for (int ic = m0; ic < m1; ic += blk.Mc)
                    {
                        int mc = Math.Min(blk.Mc, m1 - ic);
                        GemmPack.PackA(cfg.Isa, job.TransA, job.A, job.Lda, ic, mc, pc, kc, mr, aPack);
                        for (int ir = 0; ir < mc; ir += mr)
                        {
                            int rows = Math.Min(mr, mc - ir);
                            float* ap = aPack + ((long)ir * kc);
                            for (int jr = 0; jr < nc; jr += nr)
                            {
                                int cols = Math.Min(nr, nc - jr);
                                float* bp = bPack + ((long)jr * kc);
                                float* cp = job.C + ((long)(ic + ir) * job.Ldc) + jc + jr;
                                if (load)
                                {
                                    // The next tile to the right, or the first of the next row strip.
                                    PrefetchTile(jr + nr < nc ? cp + nr : cp + ((long)mr * job.Ldc) - jr, job.Ldc, mr, nr);
                                }

                                if (rows == mr && cols == nr)
                                {
                                    tile(kc, ap, bp, cp, job.Ldc, load);
                                }
                                else
                                {
                                    EdgeTile(tile, kc, ap, bp, cp, job.Ldc, load, rows, cols, mr, nr, edge);
                                }
                            }
                        }
                    }
                }
            }
        }
        finally
        {
            NativePool.Return(aPack, aBytes);
            NativePool.Return(bPack, bBytes);
            if (scratch != null)
            {
                NativePool.Return(scratch, scratchBytes);
            }
        }
    }

    // A partial tile runs the full kernel on a (mr,nr) scratch tile; only rows×cols go back to C.
    private static void EdgeTile(
        delegate*<int, float*, float*, float*, nint, bool, void> tile,
        int kc, float* ap, float* bp, float* c, int ldc, bool load, int rows, int cols, int mr, int nr, float* edge)
    {
        if (load)
        {
            for (int r = 0; r < rows; r++)
            {
                new ReadOnlySpan<float>(c + ((long)r * ldc), cols).CopyTo(new Span<float>(edge + (r * nr), cols));
            }
        }

        tile(kc, ap, bp, edge, nr, load);
        for (int r = 0; r < rows; r++)
        {
            new ReadOnlySpan<float>(edge + (r * nr), cols).CopyTo(new Span<float>(c + ((long)r * ldc), cols));
        }
    }

    // Brings a C tile (mr rows of nr floats) towards L1 while the current tile computes, so the
    // kernel's initial C loads do not stall on DRAM. Prefetches never fault, so addresses past the
    // matrix are harmless. Measured, one thread, best of 9: dW lm_head (8192,512,1024) TN with its
    // 16 MiB C went from 205-208 to 220-229 GFLOP/s; shapes whose C fits in cache did not change.
    private static void PrefetchTile(float* c, int ldc, int mr, int nr)
    {
        if (!Sse.IsSupported)
        {
            return;
        }

        for (int r = 0; r < mr; r++)
        {
            float* row = c + ((long)r * ldc);
            for (int j = 0; j < nr; j += 16)
            {
                Sse.Prefetch0(row + j);
            }

            Sse.Prefetch0(row + nr - 1);
        }
    }

    private static int RoundUp(int x, int to) => (x + to - 1) / to * to;
}
