using System.Runtime.CompilerServices;
using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// The CPU engine: tensors in 64-byte aligned host memory from <see cref="NativePool"/>, operations by
/// this folder's kernels (packed AVX-512 GEMM, blocked attention), bit-reproducible for any thread
/// count. Each operation only unwraps pointers and calls its kernel, so results and speed are those of
/// the kernels themselves.
/// </summary>
public sealed unsafe class NativeBackend : Backend
{
    internal NativeBackend()
    {
    }

    /// <inheritdoc/>
    public override string Name => "native";

    /// <inheritdoc/>
    public override string Device => "cpu";

    /// <inheritdoc/>
    public override bool IsHost => true;

    /// <inheritdoc/>
    /// <remarks>Defaults to the processor count.</remarks>
    public override int Threads
    {
        get => CpuParallel.Threads;
        set => CpuParallel.Threads = value;
    }

    /// <inheritdoc/>
    public override Tensor Empty(DType dtype, params int[] shape) => Tensor.Empty(dtype, shape);

    /// <inheritdoc/>
    public override void Clear(Tensor t) => t.Clear();

    /// <inheritdoc/>
    public override Tensor FromHost(Tensor host) => Host(host).ToHost();

    /// <inheritdoc/>
    public override Tensor ToHost(Tensor t) => Host(t).ToHost();

    /// <inheritdoc/>
    public override void CopyFromHost(Tensor host, Tensor destination)
    {
        if (host.DType != destination.DType || host.ByteLength != destination.ByteLength)
        {
            throw new ArgumentException($"cannot copy {host} into {destination}: dtype and size must match");
        }

        Buffer.MemoryCopy(Host(host).Data, Host(destination).Data, destination.ByteLength, host.ByteLength);
    }

    /// <inheritdoc/>
    public override Tensor Convert(Tensor t, DType dtype) => Host(t).To(dtype);

    /// <inheritdoc/>
    public override Tensor View(Tensor t, int[] shape) => Host(t).View(shape);

    /// <inheritdoc/>
    public override void Copy(Tensor source, long sourceOffset, Tensor destination, long destinationOffset, long count)
    {
        CheckRange(source, sourceOffset, count, nameof(source));
        CheckRange(destination, destinationOffset, count, nameof(destination));
        new ReadOnlySpan<float>(source.F32Ptr + sourceOffset, checked((int)count)).CopyTo(new Span<float>(destination.F32Ptr + destinationOffset, checked((int)count)));
    }

    /// <inheritdoc/>
    public override void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width)
    {
        CheckColumns(source, sourceColumn, destination, destinationColumn, width);
        int rows = source.Dim(0), from = source.Dim(1), to = destination.Dim(1);
        float* s = source.F32Ptr + sourceColumn, d = destination.F32Ptr + destinationColumn;
        for (int r = 0; r < rows; r++)
        {
            new ReadOnlySpan<float>(s + ((long)r * from), width).CopyTo(new Span<float>(d + ((long)r * to), width));
        }
    }

    /// <inheritdoc/>
    public override void MatMul(Tensor a, bool transA, Tensor b, bool transB, Tensor c, bool accumulate)
    {
        if (a.Rank != 2 || c.Rank != 2)
        {
            throw new ArgumentException($"MatMul: a and c must be 2-D; got {a} and {c}");
        }

        int m = transA ? a.Dim(1) : a.Dim(0), k = transA ? a.Dim(0) : a.Dim(1), n = c.Dim(1);
        if (c.Dim(0) != m)
        {
            throw new ArgumentException($"MatMul: c {c} must have {m} rows (op(a) of {a}, transA={transA})");
        }

        switch (b.DType)
        {
            case DType.F32:
                Gemm.Run(transA, transB, m, n, k, a.F32Ptr, a.Dim(1), b.F32Ptr, b.Dim(1), c.F32Ptr, n, accumulate);
                break;
            case DType.BF16:
                Gemm.Run(transA, transB, m, n, k, a.F32Ptr, a.Dim(1), b.Bf16Ptr, b.Dim(1), c.F32Ptr, n, accumulate);
                break;
            default:
                Gemm.Run(transA, transB, m, n, k, a.F32Ptr, a.Dim(1), b, c.F32Ptr, n, accumulate);
                break;
        }
    }

    /// <inheritdoc/>
    public override void Add(Tensor a, Tensor b, Tensor output) => TensorPrimitives.Add(a.AsF32(), b.AsF32(), output.AsF32());

    /// <inheritdoc/>
    public override void Scale(Tensor x, float s)
    {
        var span = x.AsF32();
        TensorPrimitives.Multiply(span, s, span);
    }

    /// <inheritdoc/>
    public override void ScaleRows(Tensor x, float[] scales)
    {
        int n = scales.Length;
        if (n == 0 || x.Length % n != 0)
        {
            throw new ArgumentException($"{scales.Length} row scales do not divide a tensor of {x.Length} elements into rows", nameof(scales));
        }

        int width = checked((int)(x.Length / n));
        var span = x.AsF32();
        for (int r = 0; r < n; r++)
        {
            var row = span.Slice(r * width, width);
            TensorPrimitives.Multiply(row, scales[r], row);
        }
    }

    /// <inheritdoc/>
    public override void AddRowVector(Tensor y, Tensor bias)
    {
        var b = bias.AsF32();
        int width = b.Length, n = checked((int)(y.Length / Math.Max(1, width)));
        float* yp = y.F32Ptr;
        for (int i = 0; i < n; i++)
        {
            var row = new Span<float>(yp + ((long)i * width), width);
            TensorPrimitives.Add(row, b, row);
        }
    }

    /// <inheritdoc/>
    public override void AccumulateRowSum(Tensor dy, Tensor sum)
    {
        var db = sum.AsF32();
        int width = db.Length, n = checked((int)(dy.Length / Math.Max(1, width)));
        float* dyp = dy.F32Ptr;
        for (int i = 0; i < n; i++)
        {
            TensorPrimitives.Add(db, new ReadOnlySpan<float>(dyp + ((long)i * width), width), db);
        }
    }

    /// <inheritdoc/>
    public override double SumOfSquares(IReadOnlyList<Tensor> tensors)
    {
        double sum = 0;
        foreach (var x in tensors)
        {
            foreach (float g in x.AsF32())
            {
                sum += (double)g * g;
            }
        }

        return sum;
    }

    /// <inheritdoc/>
    public override double Sum(Tensor x)
    {
        double sum = 0;
        foreach (float l in x.AsF32())
        {
            sum += l;
        }

        return sum;
    }

    /// <inheritdoc/>
    public override void RmsNormForward(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps, float weightOffset = 0)
    {
        using var effective = OffsetWeight(weight, weightOffset);
        RmsNorm.Forward(x.F32Ptr, (effective ?? weight).F32Ptr, y.F32Ptr, rstd.F32Ptr, x.Dim(0), x.Dim(1), eps);
    }

    /// <inheritdoc/>
    public override void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dweight, float weightOffset = 0)
    {
        // d/dw of x̂·(w + offset) is x̂, as for the plain norm: only dx reads the effective weight.
        using var effective = OffsetWeight(weight, weightOffset);
        RmsNorm.Backward(dy.F32Ptr, x.F32Ptr, (effective ?? weight).F32Ptr, rstd.F32Ptr, dx.F32Ptr, dweight is null ? null : dweight.F32Ptr, x.Dim(0), x.Dim(1));
    }

    /// <inheritdoc/>
    public override void RopeForward(Tensor x, RopeTable table, int b, int t, int nh, int[]? positions)
    {
        fixed (int* pp = positions)
        {
            Rope.Forward(x.F32Ptr, table, b, t, nh, table.HeadDim, pp);
        }
    }

    /// <inheritdoc/>
    public override void RopeBackward(Tensor dx, RopeTable table, int b, int t, int nh, int[]? positions)
    {
        fixed (int* pp = positions)
        {
            Rope.Backward(dx.F32Ptr, table, b, t, nh, table.HeadDim, pp);
        }
    }

    /// <inheritdoc/>
    public override void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, int b, int t, int nh, int nkv, int[]? positions, AttentionSpec spec = default)
    {
        fixed (int* pp = positions)
        {
            Attention.Forward(q.F32Ptr, k.F32Ptr, v.F32Ptr, o.F32Ptr, lse.F32Ptr, b, t, nh, nkv, HeadSize(q, b, t, nh), pp, spec);
        }
    }

    /// <inheritdoc/>
    public override void AttentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dq, Tensor dk, Tensor dv, int b, int t, int nh, int nkv, int[]? positions, AttentionSpec spec = default)
    {
        fixed (int* pp = positions)
        {
            Attention.Backward(dout.F32Ptr, q.F32Ptr, k.F32Ptr, v.F32Ptr, o.F32Ptr, lse.F32Ptr, dq.F32Ptr, dk.F32Ptr, dv.F32Ptr, b, t, nh, nkv, HeadSize(q, b, t, nh), pp, spec);
        }
    }

    /// <inheritdoc/>
    public override void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor o, int b, int tn, int past, int nh, int nkv, AttentionSpec spec = default) =>
        Tensors.AttentionDecode.Forward(q.F32Ptr, kCache.F32Ptr, vCache.F32Ptr, o.F32Ptr, b, tn, past, kCache.Dim(1), nh, nkv, HeadSize(q, b, tn, nh), spec);

    /// <inheritdoc/>
    public override void SwiGluForward(Tensor gate, Tensor up, Tensor h) => SwiGlu.Forward(gate.F32Ptr, up.F32Ptr, h.F32Ptr, h.Length);

    /// <inheritdoc/>
    public override void SwiGluBackward(Tensor dh, Tensor gate, Tensor up, Tensor dgate, Tensor dup) =>
        SwiGlu.Backward(dh.F32Ptr, gate.F32Ptr, up.F32Ptr, dgate.F32Ptr, dup.F32Ptr, dh.Length);

    /// <inheritdoc/>
    public override void GeGluForward(Tensor gate, Tensor up, Tensor h) => GeGlu.Forward(gate.F32Ptr, up.F32Ptr, h.F32Ptr, h.Length);

    /// <inheritdoc/>
    public override void GeGluBackward(Tensor dh, Tensor gate, Tensor up, Tensor dgate, Tensor dup) =>
        GeGlu.Backward(dh.F32Ptr, gate.F32Ptr, up.F32Ptr, dgate.F32Ptr, dup.F32Ptr, dh.Length);

    /// <inheritdoc/>
    public override void SoftcapForward(Tensor x, float cap) => Softcap.Forward(x.F32Ptr, x.Length, cap);

    /// <inheritdoc/>
    public override void SoftcapBackward(Tensor dy, Tensor y, float cap) => Softcap.Backward(dy.F32Ptr, y.F32Ptr, dy.Length, cap);

    // weight + offset in a new F32 tensor, or null when the offset is 0.
    private static Tensor? OffsetWeight(Tensor weight, float offset)
    {
        if (offset == 0)
        {
            return null;
        }

        var effective = Tensor.Empty(DType.F32, checked((int)weight.Length));
        TensorPrimitives.Add(new ReadOnlySpan<float>(weight.F32Ptr, checked((int)weight.Length)), offset, effective.AsF32());
        return effective;
    }

    /// <inheritdoc/>
    public override void EmbeddingGather(int[] ids, Tensor table, Tensor output)
    {
        int n = ids.Length, v = table.Dim(0), c = table.Dim(1);
        fixed (int* idp = ids)
        {
            if (table.DType == DType.BF16)
            {
                Embedding.Gather(idp, table.Bf16Ptr, output.F32Ptr, n, c, v);
            }
            else
            {
                Embedding.Gather(idp, table.F32Ptr, output.F32Ptr, n, c, v);
            }
        }
    }

    /// <inheritdoc/>
    public override void EmbeddingScatterAdd(int[] ids, Tensor dout, Tensor dtable)
    {
        fixed (int* idp = ids)
        {
            Embedding.ScatterAdd(idp, dout.F32Ptr, dtable.F32Ptr, ids.Length, dtable.Dim(1), dtable.Dim(0));
        }
    }

    /// <inheritdoc/>
    public override void CrossEntropy(Tensor logits, int[] targets, Tensor losses, Tensor? dlogits, float gradScale)
    {
        fixed (int* tp = targets)
        {
            Tensors.CrossEntropy.ForwardBackward(logits.F32Ptr, tp, losses.F32Ptr, dlogits is null ? null : dlogits.F32Ptr, logits.Dim(0), logits.Dim(1), gradScale);
        }
    }

    /// <inheritdoc/>
    public override void DropoutForward(Tensor x, Tensor output, float p, ulong seed)
    {
        uint threshold = DropoutMask.Threshold(p);
        float keepScale = 1f / (1f - p);
        float* xp = x.F32Ptr, op = output.F32Ptr;
        for (long i = 0; i < x.Length; i++)
        {
            op[i] = DropoutMask.Keep(seed, i, threshold) ? xp[i] * keepScale : 0f;
        }
    }

    /// <inheritdoc/>
    public override void AccumulateMasked(Tensor source, Tensor destination, float p, ulong seed)
    {
        uint threshold = DropoutMask.Threshold(p);
        float keepScale = 1f / (1f - p);
        float* sp = source.F32Ptr, dp = destination.F32Ptr;
        for (long i = 0; i < source.Length; i++)
        {
            if (DropoutMask.Keep(seed, i, threshold))
            {
                dp[i] += sp[i] * keepScale;
            }
        }
    }

    /// <inheritdoc/>
    public override void AdamWUpdate(Tensor p, Tensor g, Tensor m, Tensor v, in AdamWCoefficients c) =>
        AdamWKernel.Update(p.AsF32(), g.AsF32(), m.AsF32(), v.AsF32(), c);

    private static int HeadSize(Tensor q, int b, int t, int nh)
    {
        long rows = (long)b * t * nh;
        return rows == 0 ? 0 : checked((int)(q.Length / rows));
    }

    private static void CheckRange(Tensor t, long offset, long count, string name)
    {
        if (offset < 0 || count < 0 || offset + count > t.Length)
        {
            throw new ArgumentOutOfRangeException(name, $"elements [{offset}, {offset + count}) are outside {t}");
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Tensor Host(Tensor t) => t.IsHost ? t : throw new ArgumentException($"{t} is not a host tensor: the native backend runs on host memory only; move the model with To(Backend.Native)");
}
