using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Causal scaled-dot-product attention with grouped-query heads: query head h reads kv head
/// h / (NH / NKV); scale 1/√HS. Keeps the log-sum-exp per query row instead of the probabilities.
/// </summary>
/// <remarks>
/// Flash-attention style on the CPU: queries in tiles of <see cref="QueryTile"/> rows meet keys in
/// blocks of <see cref="KeyBlock"/>, with an online softmax, so no (T,T) matrix exists. K (and V in
/// backward) are repacked per (b, kv head) into key blocks stored transposed (HS, KeyBlock), so the
/// scores of one query row against a block are HS broadcast-FMAs over 64 lanes, without horizontal sums.
/// Work is split over (b, kv head): one thread owns a kv head and all the query heads of its group, so
/// dk/dv accumulate race-free in a fixed order and results are bit-identical for any thread count.
/// Reference twin: <see cref="AttentionReference"/>.
/// </remarks>
internal static unsafe class Attention
{
    // 64 keys = 4 AVX-512 vectors of scores per query row; a packed block of HS=128 is 32 KiB (L1/L2).
    private const int KeyBlock = 64;

    // 32 query rows: the score/probability tiles (32×64 floats, 8 KiB each) stay in L1.
    private const int QueryTile = 32;

    // Below about this many multiply-adds per thread, a second thread costs more than it saves.
    private const long MinFlopsPerThread = 1 << 18;

    /// <summary>
    /// q (B,T,NH,HS), k (B,T,NKV,HS), v (B,T,NKV,HS) -> o (B,T,NH,HS), lse (B,NH,T).
    /// <paramref name="positions"/> (B,T), optional, packs several examples per row: the query at column i
    /// with position p attends to columns i − p … i only (its own example). Null: one example per row.
    /// <paramref name="spec"/>: a sliding window (the query at column i also sees no key before column
    /// i − window + 1), the score scale (default 1/√HS) and logit soft-capping (scores → cap·tanh(scores/cap)).
    /// </summary>
    public static void Forward(float* q, float* k, float* v, float* o, float* lse, int b, int t, int nh, int nkv, int hs, int* positions = null, AttentionSpec spec = default)
    {
        if (!Validate(b, t, nh, nkv, hs, spec))
        {
            return;
        }

        ValidatePositions(positions, b, t);

        RequireNotNull(q, nameof(q));
        RequireNotNull(k, nameof(k));
        RequireNotNull(v, nameof(v));
        RequireNotNull(o, nameof(o));
        RequireNotNull(lse, nameof(lse));

        var s = new Shape(b, t, nh, nkv, hs, positions, spec);
        nint qp = (nint)q, kp = (nint)k, vp = (nint)v, op = (nint)o, lp = (nint)lse;
        CpuParallel.For(b * nkv, MinUnitsPerThread(s), (start, end) =>
        {
            long floats = s.PackedFloats + (long)QueryTile * KeyBlock + (long)QueryTile * hs + 2L * QueryTile;
            float* scratch = (float*)NativePool.Rent((nuint)(floats * sizeof(float)));
            try
            {
                for (int unit = start; unit < end; unit++)
                {
                    ForwardUnit((float*)qp, (float*)kp, (float*)vp, (float*)op, (float*)lp, unit / nkv, unit % nkv, s, scratch);
                }
            }
            finally
            {
                NativePool.Return(scratch, (nuint)(floats * sizeof(float)));
            }
        });
    }

    /// <summary>dout (B,T,NH,HS) -> dq (B,T,NH,HS), dk (B,T,NKV,HS), dv (B,T,NKV,HS), all overwritten; <paramref name="positions"/> and <paramref name="spec"/> as in Forward.</summary>
    public static void Backward(float* dout, float* q, float* k, float* v, float* o, float* lse, float* dq, float* dk, float* dv, int b, int t, int nh, int nkv, int hs, int* positions = null, AttentionSpec spec = default)
    {
        if (!Validate(b, t, nh, nkv, hs, spec))
        {
            return;
        }

        ValidatePositions(positions, b, t);

        RequireNotNull(dout, nameof(dout));
        RequireNotNull(q, nameof(q));
        RequireNotNull(k, nameof(k));
        RequireNotNull(v, nameof(v));
        RequireNotNull(o, nameof(o));
        RequireNotNull(lse, nameof(lse));
        RequireNotNull(dq, nameof(dq));
        RequireNotNull(dk, nameof(dk));
        RequireNotNull(dv, nameof(dv));

        var s = new Shape(b, t, nh, nkv, hs, positions, spec);
        nint dop = (nint)dout, qp = (nint)q, kp = (nint)k, vp = (nint)v, op = (nint)o, lp = (nint)lse, dqp = (nint)dq, dkp = (nint)dk, dvp = (nint)dv;
        CpuParallel.For(b * nkv, MinUnitsPerThread(s), (start, end) =>
        {
            long floats = 2 * s.PackedFloats + 2L * QueryTile * KeyBlock + (long)QueryTile * hs + 2L * t * hs + QueryTile;
            float* scratch = (float*)NativePool.Rent((nuint)(floats * sizeof(float)));
            try
            {
                for (int unit = start; unit < end; unit++)
                {
                    BackwardUnit((float*)dop, (float*)qp, (float*)kp, (float*)vp, (float*)op, (float*)lp, (float*)dqp, (float*)dkp, (float*)dvp, unit / nkv, unit % nkv, s, scratch);
                }
            }
            finally
            {
                NativePool.Return(scratch, (nuint)(floats * sizeof(float)));
            }
        });
    }

    private static void ForwardUnit(float* q, float* k, float* v, float* o, float* lse, int bi, int kvh, in Shape s, float* scratch)
    {
        int t = s.T, hs = s.HS;
        float* kt = scratch;
        float* sc = kt + s.PackedFloats;
        float* acc = sc + QueryTile * KeyBlock;
        float* m = acc + QueryTile * hs;
        float* l = m + QueryTile;

        long kvStride = (long)s.NKV * hs;
        long qStride = (long)s.NH * hs;
        float* kBase = k + (long)bi * t * kvStride + (long)kvh * hs;
        float* vBase = v + (long)bi * t * kvStride + (long)kvh * hs;
        PackTransposed(kBase, kvStride, t, hs, kt);

        float scale = s.Scale, cap = s.Softcap;
        int group = s.NH / s.NKV;
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
        {
            float* qBase = q + (long)bi * t * qStride + (long)h * hs;
            float* oBase = o + (long)bi * t * qStride + (long)h * hs;
            float* lseRow = lse + ((long)bi * s.NH + h) * t;
            for (int i0 = 0; i0 < t; i0 += QueryTile)
            {
                int rows = Math.Min(QueryTile, t - i0);
                new Span<float>(acc, rows * hs).Clear();
                new Span<float>(m, rows).Fill(float.NegativeInfinity);
                new Span<float>(l, rows).Clear();

                int lastBlock = (i0 + rows - 1) / KeyBlock;
                for (int blk = s.FirstKey(bi, i0) / KeyBlock; blk <= lastBlock; blk++)
                {
                    int j0 = blk * KeyBlock;
                    float* ktBlock = kt + (long)blk * hs * KeyBlock;
                    for (int r = 0; r < rows; r++)
                    {
                        float* p = sc + r * KeyBlock;
                        int count = Math.Min(KeyBlock, i0 + r - j0 + 1);
                        int first = Math.Max(0, s.FirstKey(bi, i0 + r) - j0);
                        if (count <= first)
                        {
                            new Span<float>(p, KeyBlock).Clear();
                            continue;
                        }

                        Scores(qBase + (long)(i0 + r) * qStride, ktBlock, p, hs);
                        new Span<float>(p, first).Clear();
                        var valid = new Span<float>(p + first, count - first);
                        TensorPrimitives.Multiply(valid, scale, valid);
                        if (cap > 0)
                        {
                            Softcap.Apply(valid, cap);
                        }

                        float mNew = Math.Max(m[r], TensorPrimitives.Max<float>(valid));
                        if (mNew != m[r])
                        {
                            // Online softmax: rescale what was summed under the old max (exp(−∞) = 0 at the start).
                            float corr = MathF.Exp(m[r] - mNew);
                            l[r] *= corr;
                            TensorPrimitives.Multiply(new Span<float>(acc + r * hs, hs), corr, new Span<float>(acc + r * hs, hs));
                            m[r] = mNew;
                        }

                        TensorPrimitives.Subtract(valid, mNew, valid);
                        TensorPrimitives.Exp(valid, valid);
                        l[r] += TensorPrimitives.Sum<float>(valid);
                        new Span<float>(p + count, KeyBlock - count).Clear();
                    }

                    int keys = Math.Min(KeyBlock, i0 + rows - j0);
                    AccumulateRows(sc, KeyBlock, 1, rows, keys, vBase + j0 * kvStride, kvStride, acc, hs, hs);
                }

                for (int r = 0; r < rows; r++)
                {
                    TensorPrimitives.Multiply(new Span<float>(acc + r * hs, hs), 1f / l[r], new Span<float>(oBase + (long)(i0 + r) * qStride, hs));
                    lseRow[i0 + r] = m[r] + MathF.Log(l[r]);
                }
            }
        }
    }

    private static void BackwardUnit(float* dout, float* q, float* k, float* v, float* o, float* lse, float* dq, float* dk, float* dv, int bi, int kvh, in Shape s, float* scratch)
    {
        int t = s.T, hs = s.HS;
        float* kt = scratch;
        float* vt = kt + s.PackedFloats;
        float* pt = vt + s.PackedFloats;
        float* dst = pt + QueryTile * KeyBlock;
        float* dqTile = dst + QueryTile * KeyBlock;
        float* dkAcc = dqTile + QueryTile * hs;
        float* dvAcc = dkAcc + (long)t * hs;
        float* delta = dvAcc + (long)t * hs;

        long kvStride = (long)s.NKV * hs;
        long qStride = (long)s.NH * hs;
        long kvOffset = (long)bi * t * kvStride + (long)kvh * hs;
        float* kBase = k + kvOffset;
        float* vBase = v + kvOffset;
        PackTransposed(kBase, kvStride, t, hs, kt);
        PackTransposed(vBase, kvStride, t, hs, vt);
        new Span<float>(dkAcc, 2 * t * hs).Clear();

        float scale = s.Scale, cap = s.Softcap;
        Span<float> capped = stackalloc float[KeyBlock];
        int group = s.NH / s.NKV;
        for (int h = kvh * group; h < (kvh + 1) * group; h++)
        {
            long qOffset = (long)bi * t * qStride + (long)h * hs;
            float* qBase = q + qOffset;
            float* dqBase = dq + qOffset;
            float* doBase = dout + qOffset;
            float* oBase = o + qOffset;
            float* lseRow = lse + ((long)bi * s.NH + h) * t;
            for (int i0 = 0; i0 < t; i0 += QueryTile)
            {
                int rows = Math.Min(QueryTile, t - i0);
                new Span<float>(dqTile, rows * hs).Clear();
                for (int r = 0; r < rows; r++)
                {
                    long row = (long)(i0 + r) * qStride;
                    delta[r] = TensorPrimitives.Dot(new ReadOnlySpan<float>(doBase + row, hs), new ReadOnlySpan<float>(oBase + row, hs));
                }

                int lastBlock = (i0 + rows - 1) / KeyBlock;
                for (int blk = s.FirstKey(bi, i0) / KeyBlock; blk <= lastBlock; blk++)
                {
                    int j0 = blk * KeyBlock;
                    for (int r = 0; r < rows; r++)
                    {
                        float* p = pt + r * KeyBlock;
                        float* ds = dst + r * KeyBlock;
                        int count = Math.Min(KeyBlock, i0 + r - j0 + 1);
                        int first = Math.Max(0, s.FirstKey(bi, i0 + r) - j0);
                        if (count <= first)
                        {
                            new Span<float>(p, KeyBlock).Clear();
                            new Span<float>(ds, KeyBlock).Clear();
                            continue;
                        }

                        long row = (long)(i0 + r) * qStride;
                        Scores(qBase + row, kt + (long)blk * hs * KeyBlock, p, hs);
                        Scores(doBase + row, vt + (long)blk * hs * KeyBlock, ds, hs);
                        new Span<float>(p, first).Clear();
                        new Span<float>(ds, first).Clear();

                        // P = exp(logit − lse) with logit = scale·s (capped: cap·tanh(scale·s/cap));
                        // dS = P·(dP − delta)·∂logit/∂s, ∂logit/∂s = scale (capped: scale·(1 − tanh²)).
                        var pv = new Span<float>(p + first, count - first);
                        var dsv = new Span<float>(ds + first, count - first);
                        TensorPrimitives.Multiply(pv, scale, pv);
                        var tanh = capped[..pv.Length];
                        if (cap > 0)
                        {
                            TensorPrimitives.Multiply(pv, 1f / cap, tanh);
                            TensorPrimitives.Tanh(tanh, tanh);
                            TensorPrimitives.Multiply(tanh, cap, pv);
                        }

                        TensorPrimitives.Subtract(pv, lseRow[i0 + r], pv);
                        TensorPrimitives.Exp(pv, pv);
                        TensorPrimitives.Subtract(dsv, delta[r], dsv);
                        TensorPrimitives.Multiply(dsv, pv, dsv);
                        if (cap > 0)
                        {
                            TensorPrimitives.Multiply(tanh, tanh, tanh);
                            TensorPrimitives.Subtract(1f, tanh, tanh);
                            TensorPrimitives.Multiply(dsv, tanh, dsv);
                        }

                        TensorPrimitives.Multiply(dsv, scale, dsv);
                        new Span<float>(p + count, KeyBlock - count).Clear();
                        new Span<float>(ds + count, KeyBlock - count).Clear();
                    }

                    int keys = Math.Min(KeyBlock, i0 + rows - j0);

                    // dQ_tile += dS·K_blk; dK_blk += dSᵀ·Q_tile; dV_blk += Pᵀ·dO_tile.
                    AccumulateRows(dst, KeyBlock, 1, rows, keys, kBase + j0 * kvStride, kvStride, dqTile, hs, hs);
                    AccumulateRows(dst, 1, KeyBlock, keys, rows, qBase + (long)i0 * qStride, qStride, dkAcc + (long)j0 * hs, hs, hs);
                    AccumulateRows(pt, 1, KeyBlock, keys, rows, doBase + (long)i0 * qStride, qStride, dvAcc + (long)j0 * hs, hs, hs);
                }

                for (int r = 0; r < rows; r++)
                {
                    new ReadOnlySpan<float>(dqTile + r * hs, hs).CopyTo(new Span<float>(dqBase + (long)(i0 + r) * qStride, hs));
                }
            }
        }

        for (int j = 0; j < t; j++)
        {
            new ReadOnlySpan<float>(dkAcc + (long)j * hs, hs).CopyTo(new Span<float>(dk + kvOffset + j * kvStride, hs));
            new ReadOnlySpan<float>(dvAcc + (long)j * hs, hs).CopyTo(new Span<float>(dv + kvOffset + j * kvStride, hs));
        }
    }

    // src rows (T, stride) of one kv head -> blocks of (HS, KeyBlock), zero past T.
    private static void PackTransposed(float* src, long stride, int t, int hs, float* dst)
    {
        int blocks = (t + KeyBlock - 1) / KeyBlock;
        for (int blk = 0; blk < blocks; blk++)
        {
            float* block = dst + (long)blk * hs * KeyBlock;
            for (int jj = 0; jj < KeyBlock; jj++)
            {
                int j = blk * KeyBlock + jj;
                if (j < t)
                {
                    float* row = src + j * stride;
                    for (int d = 0; d < hs; d++)
                    {
                        block[d * KeyBlock + jj] = row[d];
                    }
                }
                else
                {
                    for (int d = 0; d < hs; d++)
                    {
                        block[d * KeyBlock + jj] = 0f;
                    }
                }
            }
        }
    }

    // out[0..KeyBlock) = Σ_d x[d] · block[d, ·]: one query row against one packed key block.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scores(float* x, float* block, float* output, int hs)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int d = 0; d < hs; d++)
            {
                var w = Vector512.Create(x[d]);
                float* row = block + d * KeyBlock;
                a0 = Vector512.FusedMultiplyAdd(Vector512.Load(row), w, a0);
                a1 = Vector512.FusedMultiplyAdd(Vector512.Load(row + 16), w, a1);
                a2 = Vector512.FusedMultiplyAdd(Vector512.Load(row + 32), w, a2);
                a3 = Vector512.FusedMultiplyAdd(Vector512.Load(row + 48), w, a3);
            }

            a0.Store(output);
            a1.Store(output + 16);
            a2.Store(output + 32);
            a3.Store(output + 48);
        }
        else if (Vector256.IsHardwareAccelerated)
        {
            for (int half = 0; half < KeyBlock; half += 32)
            {
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                for (int d = 0; d < hs; d++)
                {
                    var w = Vector256.Create(x[d]);
                    float* row = block + d * KeyBlock + half;
                    a0 = Vector256.FusedMultiplyAdd(Vector256.Load(row), w, a0);
                    a1 = Vector256.FusedMultiplyAdd(Vector256.Load(row + 8), w, a1);
                    a2 = Vector256.FusedMultiplyAdd(Vector256.Load(row + 16), w, a2);
                    a3 = Vector256.FusedMultiplyAdd(Vector256.Load(row + 24), w, a3);
                }

                a0.Store(output + half);
                a1.Store(output + half + 8);
                a2.Store(output + half + 16);
                a3.Store(output + half + 24);
            }
        }
        else
        {
            new Span<float>(output, KeyBlock).Clear();
            for (int d = 0; d < hs; d++)
            {
                float w = x[d];
                float* row = block + d * KeyBlock;
                for (int jj = 0; jj < KeyBlock; jj++)
                {
                    output[jj] = MathF.FusedMultiplyAdd(row[jj], w, output[jj]);
                }
            }
        }
    }

    // dst[o, 0..hs) += Σ_{i<nIn} coef[o·coefOut + i·coefIn] · src[i·srcStride + 0..hs), for o < nOut.
    // Each output row is held in registers over the whole sum (64 floats at a time), so memory sees one
    // load and one store per output element instead of one per term.
    private static void AccumulateRows(float* coef, long coefOut, long coefIn, int nOut, int nIn, float* src, long srcStride, float* dst, long dstStride, int hs)
    {
        for (int oi = 0; oi < nOut; oi++)
        {
            float* c = coef + oi * coefOut;
            float* d = dst + oi * dstStride;
            int x = 0;
            if (Vector512.IsHardwareAccelerated)
            {
                for (; x <= hs - 64; x += 64)
                {
                    var a0 = Vector512.Load(d + x);
                    var a1 = Vector512.Load(d + x + 16);
                    var a2 = Vector512.Load(d + x + 32);
                    var a3 = Vector512.Load(d + x + 48);
                    float* sp = src + x;
                    for (int i = 0; i < nIn; i++, sp += srcStride)
                    {
                        var w = Vector512.Create(c[i * coefIn]);
                        a0 = Vector512.FusedMultiplyAdd(Vector512.Load(sp), w, a0);
                        a1 = Vector512.FusedMultiplyAdd(Vector512.Load(sp + 16), w, a1);
                        a2 = Vector512.FusedMultiplyAdd(Vector512.Load(sp + 32), w, a2);
                        a3 = Vector512.FusedMultiplyAdd(Vector512.Load(sp + 48), w, a3);
                    }

                    a0.Store(d + x);
                    a1.Store(d + x + 16);
                    a2.Store(d + x + 32);
                    a3.Store(d + x + 48);
                }

                for (; x <= hs - 16; x += 16)
                {
                    var a = Vector512.Load(d + x);
                    float* sp = src + x;
                    for (int i = 0; i < nIn; i++, sp += srcStride)
                    {
                        a = Vector512.FusedMultiplyAdd(Vector512.Load(sp), Vector512.Create(c[i * coefIn]), a);
                    }

                    a.Store(d + x);
                }
            }

            if (Vector256.IsHardwareAccelerated)
            {
                for (; x <= hs - 32; x += 32)
                {
                    var a0 = Vector256.Load(d + x);
                    var a1 = Vector256.Load(d + x + 8);
                    var a2 = Vector256.Load(d + x + 16);
                    var a3 = Vector256.Load(d + x + 24);
                    float* sp = src + x;
                    for (int i = 0; i < nIn; i++, sp += srcStride)
                    {
                        var w = Vector256.Create(c[i * coefIn]);
                        a0 = Vector256.FusedMultiplyAdd(Vector256.Load(sp), w, a0);
                        a1 = Vector256.FusedMultiplyAdd(Vector256.Load(sp + 8), w, a1);
                        a2 = Vector256.FusedMultiplyAdd(Vector256.Load(sp + 16), w, a2);
                        a3 = Vector256.FusedMultiplyAdd(Vector256.Load(sp + 24), w, a3);
                    }

                    a0.Store(d + x);
                    a1.Store(d + x + 8);
                    a2.Store(d + x + 16);
                    a3.Store(d + x + 24);
                }

                for (; x <= hs - 8; x += 8)
                {
                    var a = Vector256.Load(d + x);
                    float* sp = src + x;
                    for (int i = 0; i < nIn; i++, sp += srcStride)
                    {
                        a = Vector256.FusedMultiplyAdd(Vector256.Load(sp), Vector256.Create(c[i * coefIn]), a);
                    }

                    a.Store(d + x);
                }
            }

            for (; x < hs; x++)
            {
                float a = d[x];
                for (int i = 0; i < nIn; i++)
                {
                    a = MathF.FusedMultiplyAdd(c[i * coefIn], src[i * srcStride + x], a);
                }

                d[x] = a;
            }
        }
    }

    private static int MinUnitsPerThread(in Shape s)
    {
        long flopsPerUnit = Math.Max(1L, (long)(s.NH / s.NKV) * s.T * s.T * s.HS);
        return (int)Math.Clamp(MinFlopsPerThread / flopsPerUnit, 1, int.MaxValue);
    }

    // Returns false when there is nothing to compute.
    // Each example starts at position 0 and counts up by one: p(i) = 0 or p(i−1) + 1, so i − p(i) is
    // the column of the example's first token.
    private static void ValidatePositions(int* positions, int b, int t)
    {
        if (positions == null)
        {
            return;
        }

        for (long i = 0; i < (long)b * t; i++)
        {
            int p = positions[i];
            long col = i % t;
            if (p < 0 || p > col || (p > 0 && positions[i - 1] != p - 1))
            {
                throw new ArgumentException($"Attention: row {i / t}, column {col}: position {p} does not continue an example (0 starts one, else the previous position + 1).", nameof(positions));
            }
        }
    }

    private static bool Validate(int b, int t, int nh, int nkv, int hs, AttentionSpec spec)
    {
        spec.Validate();

        if (b < 0 || t < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(b), $"Attention: B and T must be non-negative; got B={b}, T={t}.");
        }

        if (nh <= 0 || nkv <= 0 || nh % nkv != 0)
        {
            throw new ArgumentException($"Attention: NH={nh} must be a positive multiple of NKV={nkv} (grouped-query attention).", nameof(nkv));
        }

        if (hs <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(hs), hs, "Attention: head size HS must be positive.");
        }

        if ((long)b * t * nh * hs > int.MaxValue || (long)b * nkv > int.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(t), $"Attention: B·T·NH·HS = {(long)b * t * nh * hs} exceeds the supported size.");
        }

        return b > 0 && t > 0;
    }

    private static void RequireNotNull(float* p, string name)
    {
        if (p == null)
        {
            throw new ArgumentNullException(name, $"Attention: '{name}' is null.");
        }
    }

    private readonly struct Shape(int b, int t, int nh, int nkv, int hs, int* positions, AttentionSpec spec)
    {
        private readonly int* positions = positions;
        private readonly int window = spec.Window;

        /// <summary>
        /// First key column the query at column <paramref name="i"/> of row <paramref name="bi"/> may attend to:
        /// its example's first column, and no earlier than the sliding window allows. Non-decreasing in i.
        /// </summary>
        public int FirstKey(int bi, int i)
        {
            int first = positions == null ? 0 : i - positions[((long)bi * T) + i];
            return window > 0 ? Math.Max(first, i - window + 1) : first;
        }

        public int B { get; } = b;

        public int T { get; } = t;

        public int NH { get; } = nh;

        public int NKV { get; } = nkv;

        public int HS { get; } = hs;

        public float Scale { get; } = spec.ScaleFor(hs);

        public float Softcap { get; } = spec.Softcap;

        // Floats of one kv head's K (or V) repacked into zero-padded (HS, KeyBlock) blocks.
        public long PackedFloats => (long)(T + KeyBlock - 1) / KeyBlock * KeyBlock * HS;
    }
}
