using System.Diagnostics;
using System.Runtime.InteropServices;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// GFLOP/s of <see cref="Gemm"/> and OpenBLAS sgemm on the GEMM shapes of a LoRA training step, measured
/// in the same run, interleaved (ours, OpenBLAS, ours, …) so machine noise hits both; best of N samples.
/// Target model: hidden 512, 8 heads / 4 KV heads of size 64 (K/V projections 256 wide), MLP 1408,
/// vocab 8192, M = 1024 tokens per step.
/// </summary>
internal static unsafe class GemmBenchmark
{
    // Each sample repeats the call until at least this long, so timer resolution and call overhead
    // do not dominate small shapes.
    private static readonly TimeSpan MinSample = TimeSpan.FromMilliseconds(30);

    // B is the weight operand's storage: "f32", "bf16" or "nf4" (double-quantized NF4, as QLoRA stores it).
    private sealed record Shape(string Name, bool TransA, bool TransB, int M, int N, int K, string B);

    public static int Run(BenchOptions options)
    {
        Backend.Native.Threads = options.Threads;
        Gemm.ForceIsa = options.Isa;
        GemmConfig.BlockingOverride = options.Blocking;
        OpenBlas? blas = options.NoOpenBlas ? null : OpenBlas.TryLoad();
        blas?.SetThreads(options.Threads);

        GemmConfig cfg = GemmConfig.For(GemmIsaSelector.Current);
        GemmBlocking blk = cfg.Effective();
        Console.WriteLine($"gemm: threads={options.Threads} path={cfg.Isa} tile={cfg.Mr}x{cfg.Nr} MC={blk.Mc} KC={blk.Kc} NC={blk.Nc} samples={options.Samples} (best of, interleaved)");
        if (options.NoOpenBlas)
        {
            Console.WriteLine("note: --no-openblas: our numbers only.");
        }
        else if (blas is null)
        {
            Console.WriteLine($"note: {OpenBlas.LibraryName} not found (install Debian's libopenblas0-pthread: eng/install-deps.sh --bench); printing our numbers only.");
        }
        else
        {
            Console.WriteLine($"note: OpenBLAS core '{blas.CoreName}'. BF16-B rows compare our F32×BF16 GEMM with OpenBLAS F32 sgemm of the same shape; NF4-B rows ours F32×NF4 with OpenBLAS sgemm on the dequantized weight.");
        }

        Console.WriteLine($"{"shape",-28} {"op",-2} {"M",5} {"N",5} {"K",5} {"B",-4} {"ours GF/s",10} {"OpenBLAS",10} {"ratio",6}");
        // Wakes the thread pool, JITs both element paths and lets the clock settle before the first row.
        foreach (string b in new[] { "f32", "bf16", "nf4" })
        {
            Measure(new Shape("warm-up", false, true, 512, 512, 512, b), blas, 3);
        }

        var ratios = new List<double>();
        var nf4Lines = new List<string>();
        foreach (Shape s in (options.Shapes is null ? Shapes() : ParseShapes(options.Shapes)).Where(s => options.Only is null || options.Only.Split(',').Any(o => $"{s.Name} {s.B}".Contains(o, StringComparison.OrdinalIgnoreCase))))
        {
            (double ours, double? theirs, double? f32) = Measure(s, blas, options.Samples);
            string op = $"{(s.TransA ? 'T' : 'N')}{(s.TransB ? 'T' : 'N')}";
            string peer = theirs is double t ? $"{t,10:F1} {ours / t,6:F2}" : $"{"-",10} {"-",6}";
            Console.WriteLine($"{s.Name,-28} {op,-2} {s.M,5} {s.N,5} {s.K,5} {s.B,-4} {ours,10:F1} {peer}");
            if (f32 is double f)
            {
                nf4Lines.Add($"nf4/f32 {s.Name,-20} {op} {s.M}x{s.N}x{s.K}: {ours:F1} / {f:F1} GFLOP/s = {ours / f:F2}");
            }
            if (theirs is double r)
            {
                ratios.Add(ours / r);
            }
        }

        if (ratios.Count > 0)
        {
            Console.WriteLine($"ratio ours/OpenBLAS: min {ratios.Min():F2}, geometric mean {Math.Exp(ratios.Average(Math.Log)):F2}");
        }

        // NF4 rows also time our F32 GEMM of the same shape, interleaved with the NF4 samples.
        nf4Lines.ForEach(Console.WriteLine);

        return 0;
    }

    // "NT:1024x512x512,TN:512x512x1024:bf16": transposes of A and B, M×N×K, optional B dtype bf16 or nf4.
    private static IEnumerable<Shape> ParseShapes(string spec)
    {
        foreach (string item in spec.Split(',', StringSplitOptions.RemoveEmptyEntries))
        {
            string[] parts = item.Split(':');
            int[] mnk = parts.Length >= 2 ? parts[1].Split('x').Select(int.Parse).ToArray() : [];
            if (parts[0].Length != 2 || mnk.Length != 3 || (parts.Length == 3 && parts[2] is not ("bf16" or "nf4")) || parts.Length > 3)
            {
                throw new ArgumentException($"--shapes: cannot read '{item}'; expected e.g. NT:1024x512x512, NN:64x64x64:bf16 or NT:1024x512x512:nf4");
            }

            yield return new Shape($"custom {item}", parts[0][0] == 'T', parts[0][1] == 'T', mnk[0], mnk[1], mnk[2], parts.Length == 3 ? parts[2] : "f32");
        }
    }

    private static IEnumerable<Shape> Shapes()
    {
        const int tokens = 1024;

        // (OC, C) of each Linear: q/o (512,512), k/v (256,512), gate/up (1408,512), down (512,1408), lm_head (8192,512).
        var weights = new (string Name, int Oc, int C)[] { ("q/o", 512, 512), ("k/v", 256, 512), ("gate/up", 1408, 512), ("down", 512, 1408), ("lm_head", 8192, 512) };
        foreach (var w in weights)
        {
            yield return new Shape($"fwd {w.Name} x·Wᵀ", false, true, tokens, w.Oc, w.C, "f32");
        }

        foreach (var w in weights)
        {
            yield return new Shape($"fwd {w.Name} x·Wᵀ", false, true, tokens, w.Oc, w.C, "bf16");
        }

        // QLoRA quantizes the decoder's Linear weights; lm_head stays in a float dtype.
        foreach (var w in weights.Where(w => w.Name != "lm_head"))
        {
            yield return new Shape($"fwd {w.Name} x·Wᵀ", false, true, tokens, w.Oc, w.C, "nf4");
        }

        foreach (var w in weights)
        {
            yield return new Shape($"dx {w.Name} dy·W", false, false, tokens, w.C, w.Oc, "f32");
        }

        foreach (var w in weights.Where(w => w.Name != "lm_head"))
        {
            yield return new Shape($"dx {w.Name} dy·W", false, false, tokens, w.C, w.Oc, "nf4");
        }

        foreach (var w in weights)
        {
            yield return new Shape($"dW {w.Name} dyᵀ·x", true, false, w.Oc, w.C, tokens, "f32");
        }

        foreach (int s in new[] { 512, 1024, 2048 })
        {
            yield return new Shape($"square {s}", false, true, s, s, s, "f32");
        }
    }

    // For NF4 B also returns our F32 GEMM on the dequantized weight, sampled interleaved with the NF4 one.
    private static (double Ours, double? OpenBlas, double? OursF32) Measure(Shape s, OpenBlas? blas, int samples)
    {
        int aRows = s.TransA ? s.K : s.M, aCols = s.TransA ? s.M : s.K;
        int bRows = s.TransB ? s.N : s.K, bCols = s.TransB ? s.K : s.N;
        long aLen = (long)aRows * aCols, bLen = (long)bRows * bCols, cLen = (long)s.M * s.N;
        float* a = Alloc<float>(aLen), b = Alloc<float>(bLen), c = Alloc<float>(cLen);
        ushort* b16 = Alloc<ushort>(bLen);
        Tensor? nf4 = null;
        try
        {
            var random = new Random(1);
            Fill(random, a, aLen);
            Fill(random, b, bLen);
            for (long i = 0; i < bLen; i++)
            {
                b16[i] = Bf16.FromFloat(b[i]);
            }

            if (s.B == "nf4")
            {
                // OpenBLAS then multiplies the same (dequantized) weight, so C must agree to F32 accuracy.
                using var dense = Tensor.FromF32(new ReadOnlySpan<float>(b, (int)bLen), bRows, bCols);
                nf4 = Nf4.Quantize(dense, doubleQuant: true);
                using var dequantized = nf4.To(DType.F32);
                dequantized.AsF32().CopyTo(new Span<float>(b, (int)bLen));
            }

            void Ours()
            {
                if (nf4 is not null)
                {
                    Gemm.Run(s.TransA, s.TransB, s.M, s.N, s.K, a, aCols, nf4, c, s.N, accumulate: false);
                }
                else if (s.B == "bf16")
                {
                    Gemm.Run(s.TransA, s.TransB, s.M, s.N, s.K, a, aCols, b16, bCols, c, s.N, accumulate: false);
                }
                else
                {
                    Gemm.Run(s.TransA, s.TransB, s.M, s.N, s.K, a, aCols, b, bCols, c, s.N, accumulate: false);
                }
            }

            void OursF32() => Gemm.Run(s.TransA, s.TransB, s.M, s.N, s.K, a, aCols, b, bCols, c, s.N, accumulate: false);

            void Theirs() => blas!.Sgemm(s.TransA, s.TransB, s.M, s.N, s.K, a, aCols, b, bCols, c, s.N, accumulate: false);

            if (blas is not null)
            {
                CrossCheck(s, Ours, Theirs, c, cLen);
            }

            double flops = 2.0 * s.M * s.N * s.K;
            int oursReps = Calibrate(Ours), theirReps = blas is null ? 0 : Calibrate(Theirs), f32Reps = nf4 is null ? 0 : Calibrate(OursF32);
            double bestOurs = double.MaxValue, bestTheirs = double.MaxValue, bestF32 = double.MaxValue;
            for (int i = 0; i < samples; i++)
            {
                bestOurs = Math.Min(bestOurs, Time(Ours, oursReps));
                if (nf4 is not null)
                {
                    bestF32 = Math.Min(bestF32, Time(OursF32, f32Reps));
                }

                if (blas is not null)
                {
                    bestTheirs = Math.Min(bestTheirs, Time(Theirs, theirReps));
                }
            }

            return (flops / bestOurs / 1e9, blas is null ? null : flops / bestTheirs / 1e9, nf4 is null ? null : flops / bestF32 / 1e9);
        }
        finally
        {
            NativeMemory.AlignedFree(a);
            NativeMemory.AlignedFree(b);
            NativeMemory.AlignedFree(c);
            NativeMemory.AlignedFree(b16);
            nf4?.Dispose();
        }
    }

    // A benchmark of a wrong result is worthless: our C must match OpenBLAS's to F32 accuracy (inputs in
    // [-1,1], so |C| ≲ √K and a relative 1e-4 of the largest element is ~100× the expected roundoff).
    private static void CrossCheck(Shape s, Action ours, Action theirs, float* c, long cLen)
    {
        ours();
        float[] mine = new Span<float>(c, (int)cLen).ToArray();
        theirs();
        double maxAbs = 0, maxDiff = 0;
        for (long i = 0; i < cLen; i++)
        {
            maxAbs = Math.Max(maxAbs, Math.Abs(c[i]));
            maxDiff = Math.Max(maxDiff, Math.Abs(c[i] - mine[i]));
        }

        // BF16 B rounds the weights, so that shape only agrees with F32 OpenBLAS to bf16 precision.
        double tolerance = (s.B == "bf16" ? 1e-2 : 1e-4) * maxAbs;
        if (maxDiff > tolerance)
        {
            throw new InvalidOperationException($"{s}: our C differs from OpenBLAS by {maxDiff:G3} (largest |C| {maxAbs:G3}, allowed {tolerance:G3})");
        }
    }

    // Warms the code up, then returns how many calls fill MinSample.
    private static int Calibrate(Action op)
    {
        op();
        var sw = Stopwatch.StartNew();
        int reps = 0;
        while (sw.Elapsed < MinSample)
        {
            op();
            reps++;
        }

        return Math.Max(1, reps);
    }

    // Seconds per call.
    private static double Time(Action op, int reps)
    {
        long start = Stopwatch.GetTimestamp();
        for (int i = 0; i < reps; i++)
        {
            op();
        }

        return Stopwatch.GetElapsedTime(start).TotalSeconds / reps;
    }

    private static T* Alloc<T>(long count)
        where T : unmanaged => (T*)NativeMemory.AlignedAlloc((nuint)(Math.Max(1, count) * sizeof(T)), 64);

    private static void Fill(Random random, float* x, long count)
    {
        for (long i = 0; i < count; i++)
        {
            x[i] = (float)((random.NextDouble() * 2) - 1);
        }
    }
}
