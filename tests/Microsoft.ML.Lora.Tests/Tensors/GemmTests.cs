using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>
/// <see cref="Gemm"/> against its double-precision twin <see cref="GemmReference"/>, table-driven over
/// micro-kernel path × transposes × B dtype × accumulate, each case sweeping sizes 0, 1, every MR/NR
/// tail, sizes straddling the cache blocks, and padded leading dimensions.
/// </summary>
public sealed unsafe class GemmTests
{
    // Unit roundoff of F32 round-to-nearest. A dot product of length k accumulated in F32 has error
    // at most γ_k·Σ|a||b| with γ_k = k·u/(1-k·u) (Higham, "Accuracy and Stability of Numerical
    // Algorithms", §3.1). The chain here has k products plus the initial C, and the scalar path rounds
    // the multiply and the add separately, so 2(k+1) roundings bound every path. This is the worst
    // case, yet a single wrong, missing or doubled term moves C by about Σ|a||b|/k, which is k/(2(k+1)u)
    // ≫ 1 times larger for the k ≤ 600 used here, so the bound still catches indexing bugs.
    private const double F32UnitRoundoff = 1.0 / (1 << 24);

    // GemmIsa is internal, so the tables carry its name (which also reads well in test names).
    private static GemmIsa Isa(string name) => Enum.Parse<GemmIsa>(name);

    // Marks storage outside the logical matrices: NaN in A and B padding poisons any C element whose
    // computation reads it; C padding must come back unchanged.
    private const float CPadding = 12345.5f;

    public static TheoryData<string, bool, bool, bool, bool> Paths()
    {
        var data = new TheoryData<string, bool, bool, bool, bool>();
        foreach (GemmIsa isa in SupportedIsas())
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    foreach (bool bf16 in new[] { false, true })
                    {
                        foreach (bool accumulate in new[] { false, true })
                        {
                            data.Add(isa.ToString(), transA, transB, bf16, accumulate);
                        }
                    }
                }
            }
        }

        return data;
    }

    [Fact]
    public void ThisCpuRunsEveryPathItAdvertises()
    {
        // The table above drops paths the CPU lacks; make sure a dropped path really is unsupported,
        // so that a broken detection cannot silently shrink the table.
        Assert.True(GemmIsaSelector.IsSupported(GemmIsa.Scalar));
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx512F.IsSupported, GemmIsaSelector.IsSupported(GemmIsa.Avx512));
        Assert.Equal(System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported, GemmIsaSelector.IsSupported(GemmIsa.Avx2));
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void MatchesReferenceOnEveryTail(string isaName, bool transA, bool transB, bool bf16, bool accumulate)
    {
        GemmIsa isa = Isa(isaName);
        GemmConfig cfg = GemmConfig.For(isa);
        int mr = cfg.Mr, nr = cfg.Nr;
        var sizes = new List<(int M, int N, int K)> { (0, 0, 0), (0, 5, 3), (4, 0, 3), (3, 5, 0), (1, 1, 1), (1, 1, 17), (2, 3, 1) };
        for (int m = 1; m <= (2 * mr) + 1; m++)
        {
            sizes.Add((m, nr + 3, 19));

            // C at most 16 wide takes the narrow AVX-512 kernel: its row tails too.
            sizes.Add((m, 13, 19));
        }

        for (int n = 1; n <= (2 * nr) + 1; n++)
        {
            sizes.Add((mr + 1, n, 18));
        }

        // k tails of the 16-deep SIMD transposes in packing.
        for (int k = 14; k <= 33; k++)
        {
            sizes.Add((mr + 2, nr + 1, k));
        }

        var random = new Random(Seed(isa, transA, transB, bf16, accumulate, 1));
        using var force = new ForcedPath(isa, blocking: null);
        foreach (var (m, n, k) in sizes)
        {
            CheckAgainstReference(random, transA, transB, bf16, accumulate, m, n, k);
        }
    }

    [Theory]
    [MemberData(nameof(Paths))]
    public void MatchesReferenceAcrossCacheBlocks(string isaName, bool transA, bool transB, bool bf16, bool accumulate)
    {
        GemmIsa isa = Isa(isaName);
        GemmConfig cfg = GemmConfig.For(isa);
        int mr = cfg.Mr, nr = cfg.Nr;
        var random = new Random(Seed(isa, transA, transB, bf16, accumulate, 2));

        // The measured blocking, straddled by one row, one column and one k past each block edge.
        GemmBlocking blk = cfg.Effective();
        using (new ForcedPath(isa, blocking: null))
        {
            CheckAgainstReference(random, transA, transB, bf16, accumulate, blk.Mc + 1, nr + 5, 9);
            CheckAgainstReference(random, transA, transB, bf16, accumulate, mr - 1, nr + 2, blk.Kc + 1);
            CheckAgainstReference(random, transA, transB, bf16, accumulate, 3, blk.Nc + 1, 5);
            CheckAgainstReference(random, transA, transB, bf16, accumulate, blk.Mc + 1, 16, blk.Kc + 1);
        }

        // A tiny forced blocking makes every loop level run several, partial, iterations with small
        // matrices: 2 tiles per MC block, 2 per NC panel, KC = 7.
        using (new ForcedPath(isa, new GemmBlocking(2 * mr, 7, 2 * nr)))
        {
            CheckAgainstReference(random, transA, transB, bf16, accumulate, (5 * mr) + 3, (5 * nr) + 1, 23);
            CheckAgainstReference(random, transA, transB, bf16, accumulate, 2 * mr, 2 * nr, 14);
            CheckAgainstReference(random, transA, transB, bf16, accumulate, (5 * mr) + 3, 16, 23);
        }
    }

    public static TheoryData<string, bool, bool> ThreadCases()
    {
        var data = new TheoryData<string, bool, bool>();
        foreach (GemmIsa isa in SupportedIsas())
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    data.Add(isa.ToString(), transA, transB);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(ThreadCases))]
    public void BitIdenticalForAnyThreadCount(string isaName, bool transA, bool transB)
    {
        GemmIsa isa = Isa(isaName);

        // M ≥ N splits rows, M < N splits columns; 3 threads give uneven chunks; 200×300×257 is
        // 31 MFLOP, far above the single-thread cut-off, so the work really is split. N = 16 takes
        // the narrow AVX-512 kernel.
        var random = new Random(Seed(isa, transA, transB, false, false, 3));
        using var force = new ForcedPath(isa, blocking: null);
        foreach (var (m, n, k) in new[] { (300, 200, 257), (200, 300, 257), (1000, 16, 257) })
        {
            foreach (bool bf16 in new[] { false, true })
            {
                var op = Operands.Create(random, transA, transB, bf16, m, n, k, pad: 3);
                float[] c1 = RunWithThreads(op, threads: 1, accumulate: true);
                float[] c2 = RunWithThreads(op, threads: 2, accumulate: true);
                float[] c3 = RunWithThreads(op, threads: 3, accumulate: true);
                Assert.True(BitwiseEqual(c1, c2), $"{op} differs between 1 and 2 threads");
                Assert.True(BitwiseEqual(c1, c3), $"{op} differs between 1 and 3 threads");
                Assert.False(BitwiseEqual(c1, op.C), $"{op} left C unchanged");
            }
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void SingleThreadedCallDoesNotAllocate(bool bf16)
    {
        // Pack buffers come from NativePool and the edge tile from the stack; only the fan-out to
        // several threads (CpuParallel.For's delegate) may allocate.
        var op = Operands.Create(new Random(5), transA: false, transB: true, bf16, m: 100, n: 70, k: 300, pad: 1);
        float[] c = (float[])op.C.Clone();
        int saved = CpuParallel.Threads;
        try
        {
            CpuParallel.Threads = 1;
            op.Run(c, accumulate: false);
            long before = GC.GetAllocatedBytesForCurrentThread();
            op.Run(c, accumulate: false);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally
        {
            CpuParallel.Threads = saved;
        }
    }

    [Fact]
    public void RejectsBadArguments()
    {
        float[] a = new float[64], b = new float[64], c = new float[64];
        fixed (float* pa = a, pb = b, pc = c)
        {
            float* xa = pa, xb = pb, xc = pc;
            Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(false, false, -1, 2, 2, xa, 2, xb, 2, xc, 2, false));
            var lda = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(false, false, 2, 2, 4, xa, 3, xb, 2, xc, 2, false));
            Assert.Equal("lda", lda.ParamName);
            var ldbT = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(false, true, 2, 2, 4, xa, 4, xb, 3, xc, 2, false));
            Assert.Equal("ldb", ldbT.ParamName);
            var ldc = Assert.Throws<ArgumentOutOfRangeException>(() => Gemm.Run(false, false, 2, 5, 2, xa, 2, xb, 5, xc, 4, false));
            Assert.Equal("ldc", ldc.ParamName);
            Assert.Throws<ArgumentNullException>(() => Gemm.Run(false, false, 2, 2, 2, null, 2, xb, 2, xc, 2, false));
        }
    }

    public static TheoryData<string, bool, bool, bool, bool> Nf4Paths()
    {
        var data = new TheoryData<string, bool, bool, bool, bool>();
        foreach (GemmIsa isa in SupportedIsas())
        {
            foreach (bool transA in new[] { false, true })
            {
                foreach (bool transB in new[] { false, true })
                {
                    foreach (bool doubleQuant in new[] { false, true })
                    {
                        // accumulate on for half the cases, so each (path, transB, state) gets both.
                        data.Add(isa.ToString(), transA, transB, doubleQuant, transA == doubleQuant);
                    }
                }
            }
        }

        return data;
    }

    /// <summary>
    /// NF4 B: within the F32 bound of the double reference on the dequantized weight, and bit-identical to
    /// the F32 GEMM on that dequantized weight (packing decodes to exactly the same floats, so the same
    /// kernel must give the same bits). Sizes as for dense B, plus K around the 64-element NF4 block and
    /// odd K and N, whose rows start mid-block and mid-byte.
    /// </summary>
    [Theory]
    [MemberData(nameof(Nf4Paths))]
    public void Nf4MatchesReferenceOnEveryTail(string isaName, bool transA, bool transB, bool doubleQuant, bool accumulate)
    {
        GemmIsa isa = Isa(isaName);
        GemmConfig cfg = GemmConfig.For(isa);
        int mr = cfg.Mr, nr = cfg.Nr;
        var sizes = new List<(int M, int N, int K)> { (0, 0, 0), (0, 5, 3), (4, 0, 3), (3, 5, 0), (1, 1, 1), (1, 1, 17), (2, 3, 1) };
        for (int m = 1; m <= (2 * mr) + 1; m++)
        {
            sizes.Add((m, nr + 3, 19));
            sizes.Add((m, 13, 19));
        }

        for (int n = 1; n <= (2 * nr) + 1; n++)
        {
            sizes.Add((mr + 1, n, 18));
        }

        foreach (int k in new[] { 14, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 128, 129, 200 })
        {
            sizes.Add((mr + 2, nr + 1, k));
        }

        var random = new Random(Seed(isa, transA, transB, doubleQuant, accumulate, 6));
        using var force = new ForcedPath(isa, blocking: null);
        foreach (var (m, n, k) in sizes)
        {
            CheckNf4(random, transA, transB, doubleQuant, accumulate, m, n, k);
        }
    }

    [Theory]
    [MemberData(nameof(Nf4Paths))]
    public void Nf4MatchesReferenceAcrossCacheBlocks(string isaName, bool transA, bool transB, bool doubleQuant, bool accumulate)
    {
        GemmIsa isa = Isa(isaName);
        GemmConfig cfg = GemmConfig.For(isa);
        int mr = cfg.Mr, nr = cfg.Nr;
        var random = new Random(Seed(isa, transA, transB, doubleQuant, accumulate, 7));
        GemmBlocking blk = cfg.Effective();
        using (new ForcedPath(isa, blocking: null))
        {
            CheckNf4(random, transA, transB, doubleQuant, accumulate, mr - 1, nr + 2, blk.Kc + 1);
            CheckNf4(random, transA, transB, doubleQuant, accumulate, 3, blk.Nc + 1, 5);
            CheckNf4(random, transA, transB, doubleQuant, accumulate, blk.Mc + 1, 16, blk.Kc + 1);
        }

        // KC = 7: every k slice starts at an odd or unaligned element of a row, mid-block and mid-byte.
        using (new ForcedPath(isa, new GemmBlocking(2 * mr, 7, 2 * nr)))
        {
            CheckNf4(random, transA, transB, doubleQuant, accumulate, (5 * mr) + 3, (5 * nr) + 1, 23);
            CheckNf4(random, transA, transB, doubleQuant, accumulate, 2 * mr, 2 * nr, 14);
            CheckNf4(random, transA, transB, doubleQuant, accumulate, (5 * mr) + 3, 16, 23);
        }
    }

    [Theory]
    [MemberData(nameof(ThreadCases))]
    public void Nf4BitIdenticalForAnyThreadCount(string isaName, bool transA, bool transB)
    {
        GemmIsa isa = Isa(isaName);
        var random = new Random(Seed(isa, transA, transB, true, false, 8));
        using var force = new ForcedPath(isa, blocking: null);
        foreach (var (m, n, k) in new[] { (300, 200, 257), (200, 300, 257), (1000, 16, 257) })
        {
            using var op = Operands.CreateNf4(random, transA, transB, doubleQuant: true, m, n, k, pad: 3);
            float[] c1 = RunWithThreads(op, threads: 1, accumulate: true);
            float[] c2 = RunWithThreads(op, threads: 2, accumulate: true);
            float[] c3 = RunWithThreads(op, threads: 3, accumulate: true);
            Assert.True(BitwiseEqual(c1, c2), $"{op} differs between 1 and 2 threads");
            Assert.True(BitwiseEqual(c1, c3), $"{op} differs between 1 and 3 threads");
            Assert.False(BitwiseEqual(c1, op.C), $"{op} left C unchanged");
        }
    }

    [Fact]
    public void Nf4SingleThreadedCallDoesNotAllocate()
    {
        using var op = Operands.CreateNf4(new Random(5), transA: false, transB: true, doubleQuant: true, m: 100, n: 70, k: 300, pad: 1);
        float[] c = (float[])op.C.Clone();
        int saved = CpuParallel.Threads;
        try
        {
            CpuParallel.Threads = 1;
            op.Run(c, accumulate: false);
            long before = GC.GetAllocatedBytesForCurrentThread();
            op.Run(c, accumulate: false);
            Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        finally
        {
            CpuParallel.Threads = saved;
        }
    }

    [Fact]
    public void TensorOverloadRejectsAWrongShapeAndTakesEveryWeightDType()
    {
        float[] a = new float[6 * 4], c = new float[6 * 5];
        using var w = Tensor.FromF32(Enumerable.Range(0, 20).Select(i => (i % 7) - 3f).ToArray(), 5, 4);
        using var nf4 = Nf4.Quantize(w, doubleQuant: false);
        fixed (float* pa = a, pc = c)
        {
            float* xa = pa, xc = pc;

            // (OC,C) = (5,4) is B (N,K) for transB, so without transB it is the wrong way round.
            var e = Assert.Throws<ArgumentException>(() => Gemm.Run(false, false, 6, 5, 4, xa, 4, nf4, xc, 5, false));
            Assert.Contains("(K,N) = (4,5)", e.Message);
            Assert.Throws<ArgumentException>(() => Gemm.Run(false, true, 6, 5, 4, xa, 4, nf4.View(20), xc, 5, false));
            Assert.Throws<ArgumentNullException>(() => Gemm.Run(false, true, 6, 5, 4, xa, 4, (Tensor)null!, xc, 5, false));
        }

        // F32 and BF16 tensors take the dense paths: same bits as the pointer overloads.
        var random = new Random(9);
        float[] x = Enumerable.Range(0, 6 * 4).Select(_ => (float)random.NextDouble()).ToArray();
        using var bf16 = w.To(DType.BF16);
        foreach (Tensor t in new[] { w, bf16 })
        {
            float[] viaTensor = new float[30], viaPointer = new float[30];
            fixed (float* px = x, p1 = viaTensor, p2 = viaPointer)
            {
                Gemm.Run(false, true, 6, 5, 4, px, 4, t, p1, 5, false);
                if (t.DType == DType.F32)
                {
                    Gemm.Run(false, true, 6, 5, 4, px, 4, t.F32Ptr, 4, p2, 5, false);
                }
                else
                {
                    Gemm.Run(false, true, 6, 5, 4, px, 4, t.Bf16Ptr, 4, p2, 5, false);
                }
            }

            Assert.True(BitwiseEqual(viaTensor, viaPointer), $"{t}: Tensor overload differs from the pointer overload");
            Assert.Contains(viaTensor, v => v != 0);
        }
    }

    // Fixed per case (HashCode is randomized per process), so a failure reproduces.
    private static int Seed(GemmIsa isa, bool transA, bool transB, bool bf16, bool accumulate, int test) =>
        (test * 1000) + ((int)isa * 100) + (transA ? 8 : 0) + (transB ? 4 : 0) + (bf16 ? 2 : 0) + (accumulate ? 1 : 0);

    private static IEnumerable<GemmIsa> SupportedIsas() =>
        new[] { GemmIsa.Scalar, GemmIsa.Avx2, GemmIsa.Avx512 }.Where(GemmIsaSelector.IsSupported);

    private static void CheckAgainstReference(Random random, bool transA, bool transB, bool bf16, bool accumulate, int m, int n, int k) =>
        CheckAgainstReference(Operands.Create(random, transA, transB, bf16, m, n, k, pad: random.Next(0, 4)), accumulate);

    private static void CheckAgainstReference(Operands op, bool accumulate)
    {
        bool transA = op.TransA, transB = op.TransB;
        int m = op.M, n = op.N, k = op.K;
        float[] c = (float[])op.C.Clone();
        op.Run(c, accumulate);

        double[] expected = op.C.Select(v => (double)v).ToArray();
        double[] absSum = new double[expected.Length];
        double[] absA = op.A.Select(v => Math.Abs((double)v)).ToArray();
        double[] absB = op.BAsFloat.Select(v => Math.Abs((double)v)).ToArray();
        GemmReference.Run(transA, transB, m, n, k, op.A.Select(v => (double)v).ToArray(), op.Lda, op.BAsFloat.Select(v => (double)v).ToArray(), op.Ldb, expected, op.Ldc, accumulate);
        GemmReference.Run(transA, transB, m, n, k, absA, op.Lda, absB, op.Ldb, absSum, op.Ldc, accumulate: false);
        double gamma = 2.0 * (k + 1) * F32UnitRoundoff / (1 - (2.0 * (k + 1) * F32UnitRoundoff));

        for (int i = 0; i < m; i++)
        {
            for (int j = 0; j < op.Ldc; j++)
            {
                int at = (i * op.Ldc) + j;
                if (j >= n)
                {
                    Assert.True(c[at] == CPadding, $"{op}: C padding at ({i},{j}) overwritten with {c[at]}");
                    continue;
                }

                double scale = absSum[at] + (accumulate ? Math.Abs(op.C[at]) : 0);
                double error = Math.Abs(c[at] - expected[at]);
                Assert.True(error <= gamma * scale, $"{op} accumulate={accumulate}: C({i},{j}) = {c[at]}, reference {expected[at]}, error {error:G3} > {gamma * scale:G3}");
            }
        }
    }

    private static void CheckNf4(Random random, bool transA, bool transB, bool doubleQuant, bool accumulate, int m, int n, int k)
    {
        using var op = Operands.CreateNf4(random, transA, transB, doubleQuant, m, n, k, pad: random.Next(0, 4));
        CheckAgainstReference(op, accumulate);

        float[] viaNf4 = (float[])op.C.Clone(), viaF32 = (float[])op.C.Clone();
        op.Run(viaNf4, accumulate);
        fixed (float* pa = op.A, pb = op.BAsFloat, pc = viaF32)
        {
            Gemm.Run(transA, transB, m, n, k, pa, op.Lda, pb, op.Ldb, pc, op.Ldc, accumulate);
        }

        Assert.True(BitwiseEqual(viaNf4, viaF32), $"{op}: NF4 GEMM differs from the F32 GEMM on the dequantized weight");
    }

    private static float[] RunWithThreads(Operands op, int threads, bool accumulate)
    {
        int saved = CpuParallel.Threads;
        try
        {
            CpuParallel.Threads = threads;
            float[] c = (float[])op.C.Clone();
            op.Run(c, accumulate);
            return c;
        }
        finally
        {
            CpuParallel.Threads = saved;
        }
    }

    private static bool BitwiseEqual(float[] x, float[] y) =>
        x.Length == y.Length && x.Select(BitConverter.SingleToInt32Bits).SequenceEqual(y.Select(BitConverter.SingleToInt32Bits));

    /// <summary>Forces a GEMM path and blocking on this thread for the lifetime of the scope.</summary>
    private sealed class ForcedPath : IDisposable
    {
        public ForcedPath(GemmIsa isa, GemmBlocking? blocking)
        {
            Gemm.ForceIsa = isa;
            GemmConfig.BlockingOverride = blocking;
        }

        public void Dispose()
        {
            Gemm.ForceIsa = GemmIsa.Auto;
            GemmConfig.BlockingOverride = null;
        }
    }

    /// <summary>Random A, B, C with padded rows: A/B padding NaN, C padding <see cref="CPadding"/>.</summary>
    private sealed class Operands : IDisposable
    {
        public required bool TransA { get; init; }

        public required bool TransB { get; init; }

        public required bool Bf16 { get; init; }

        public required int M { get; init; }

        public required int N { get; init; }

        public required int K { get; init; }

        public required int Lda { get; init; }

        public required int Ldb { get; init; }

        public required int Ldc { get; init; }

        public required float[] A { get; init; }

        /// <summary>B as floats; for BF16 these are exactly the bf16 values.</summary>
        public required float[] BAsFloat { get; init; }

        public required ushort[] BBits { get; init; }

        public required float[] C { get; init; }

        /// <summary>B as an NF4 tensor (then <see cref="BAsFloat"/> is its dequantized value, unpadded).</summary>
        public Tensor? Nf4B { get; init; }

        public static Operands Create(Random random, bool transA, bool transB, bool bf16, int m, int n, int k, int pad)
        {
            int aRows = transA ? k : m, aCols = transA ? m : k;
            int bRows = transB ? n : k, bCols = transB ? k : n;
            float[] a = Matrix(random, aRows, aCols, aCols + pad, float.NaN);
            float[] b = Matrix(random, bRows, bCols, bCols + pad, float.NaN);
            ushort[] bits = new ushort[b.Length];
            if (bf16)
            {
                for (int i = 0; i < b.Length; i++)
                {
                    bits[i] = global::Microsoft.ML.Lora.Tensors.Bf16.FromFloat(b[i]);
                    b[i] = global::Microsoft.ML.Lora.Tensors.Bf16.ToFloat(bits[i]);
                }
            }

            return new Operands
            {
                TransA = transA,
                TransB = transB,
                Bf16 = bf16,
                M = m,
                N = n,
                K = k,
                Lda = aCols + pad,
                Ldb = bCols + pad,
                Ldc = n + pad,
                A = a,
                BAsFloat = b,
                BBits = bits,
                C = Matrix(random, m, n, n + pad, CPadding),
            };
        }

        /// <summary>Random A and C as <see cref="Create"/>; B drawn the same way, quantized to NF4 (contiguous: ldb = its row length).</summary>
        public static Operands CreateNf4(Random random, bool transA, bool transB, bool doubleQuant, int m, int n, int k, int pad)
        {
            var dense = Create(random, transA, transB, bf16: false, m, n, k, pad: 0);
            int bRows = transB ? n : k, bCols = transB ? k : n;

            // Rows of different magnitude, so blocks have different absmax.
            float[] b = dense.BAsFloat.Select((v, i) => v * (1 + (i / Math.Max(1, bCols) % 5))).ToArray();
            using var source = Tensor.FromF32(b, bRows, bCols);
            var nf4 = Nf4.Quantize(source, doubleQuant);
            var padded = Create(random, transA, transB, bf16: false, m, n, k, pad);
            return new Operands
            {
                TransA = transA,
                TransB = transB,
                Bf16 = false,
                M = m,
                N = n,
                K = k,
                Lda = padded.Lda,
                Ldb = bCols,
                Ldc = padded.Ldc,
                A = padded.A,
                BAsFloat = nf4.ToFloatArray(),
                BBits = [],
                C = padded.C,
                Nf4B = nf4,
            };
        }

        public void Dispose() => Nf4B?.Dispose();

        public void Run(float[] c, bool accumulate)
        {
            fixed (float* pa = A, pb = BAsFloat, pc = c)
            fixed (ushort* pbits = BBits)
            {
                if (Nf4B is not null)
                {
                    Gemm.Run(TransA, TransB, M, N, K, pa, Lda, Nf4B, pc, Ldc, accumulate);
                }
                else if (Bf16)
                {
                    Gemm.Run(TransA, TransB, M, N, K, pa, Lda, pbits, Ldb, pc, Ldc, accumulate);
                }
                else
                {
                    Gemm.Run(TransA, TransB, M, N, K, pa, Lda, pb, Ldb, pc, Ldc, accumulate);
                }
            }
        }

        public override string ToString() =>
            $"{(TransA ? "T" : "N")}{(TransB ? "T" : "N")} {(Nf4B is null ? Bf16 ? "bf16" : "f32" : Nf4B.ToString())} m={M} n={N} k={K} lda={Lda} ldb={Ldb} ldc={Ldc} path={GemmIsaSelector.Current}";

        private static float[] Matrix(Random random, int rows, int cols, int ld, float padding)
        {
            float[] x = new float[rows * ld];
            for (int r = 0; r < rows; r++)
            {
                for (int j = 0; j < ld; j++)
                {
                    x[(r * ld) + j] = j < cols ? (float)((random.NextDouble() * 2) - 1) : padding;
                }
            }

            return x;
        }
    }
}
