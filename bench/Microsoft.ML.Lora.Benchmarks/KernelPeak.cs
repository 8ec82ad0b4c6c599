using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// GFLOP/s of the bare micro-kernel on panels that stay in L1, one thread: the ceiling a whole GEMM
/// can approach (the rest is packing, C traffic and cache misses).
/// </summary>
internal static unsafe class KernelPeak
{
    public static int Run(BenchOptions options)
    {
        Gemm.ForceIsa = options.Isa;
        GemmConfig cfg = GemmConfig.For(GemmIsaSelector.Current);
        const int kc = 256;
        float* a = (float*)NativeMemory.AlignedAlloc((nuint)(cfg.Mr * kc * sizeof(float)), 64);
        float* b = (float*)NativeMemory.AlignedAlloc((nuint)(cfg.Nr * kc * sizeof(float)), 64);
        float* c = (float*)NativeMemory.AlignedAlloc((nuint)(cfg.Mr * cfg.Nr * sizeof(float)), 64);
        new Span<float>(a, cfg.Mr * kc).Fill(1e-3f);
        new Span<float>(b, cfg.Nr * kc).Fill(1e-3f);
        new Span<float>(c, cfg.Mr * cfg.Nr).Clear();
        var tile = cfg.Tile;
        const int reps = 20_000;
        double best = double.MaxValue;
        for (int s = 0; s < options.Samples + 1; s++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < reps; i++)
            {
                tile(kc, a, b, c, cfg.Nr, true);
            }

            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }

        double flops = 2.0 * cfg.Mr * cfg.Nr * kc * reps;
        Console.WriteLine($"kernel {cfg.Isa} {cfg.Mr}x{cfg.Nr} kc={kc}: {flops / best / 1e9:F1} GFLOP/s on one thread, L1-resident panels");
        NativeMemory.AlignedFree(a);
        NativeMemory.AlignedFree(b);
        NativeMemory.AlignedFree(c);
        return 0;
    }
}
