using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// Llama self-attention: q/k/v projections (optionally biased), RoPE on q and k, causal GQA, o_proj.
/// Saves the input, rotated q and k, v, the attention output and the log-sum-exp.
/// </summary>
public sealed unsafe class SelfAttention : IDisposable
{
    private readonly SavedTensors saved = new();
    private Tensor? input;
    private Tensor? q;
    private Tensor? k;
    private Tensor? v;
    private Tensor? att;
    private Tensor? lse;
    private BatchShape shape;
    private RopeTable? rope;

    /// <summary>Assembles the block; projection shapes must agree with the head counts.</summary>
    public SelfAttention(Linear qProj, Linear kProj, Linear vProj, Linear oProj, int heads, int kvHeads, int headDim)
    {
        if (heads % kvHeads != 0)
        {
            throw new ArgumentException($"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
        }

        Expect(qProj, heads * headDim, qProj.InFeatures);
        Expect(kProj, kvHeads * headDim, qProj.InFeatures);
        Expect(vProj, kvHeads * headDim, qProj.InFeatures);
        Expect(oProj, qProj.InFeatures, heads * headDim);
        QProj = qProj;
        KProj = kProj;
        VProj = vProj;
        OProj = oProj;
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
    }

    /// <summary>q_proj (NH·HS, C).</summary>
    public Linear QProj { get; }

    /// <summary>k_proj (NKV·HS, C).</summary>
    public Linear KProj { get; }

    /// <summary>v_proj (NKV·HS, C).</summary>
    public Linear VProj { get; }

    /// <summary>o_proj (C, NH·HS).</summary>
    public Linear OProj { get; }

    /// <summary>NH.</summary>
    public int Heads { get; }

    /// <summary>NKV.</summary>
    public int KvHeads { get; }

    /// <summary>HS.</summary>
    public int HeadDim { get; }

    /// <summary>Whether activations from a Forward are held.</summary>
    public bool HasActivations => !saved.IsEmpty;

    /// <summary>x (N,C) -> y (N,C). <paramref name="x"/> must stay alive until Backward.</summary>
    public void Forward(Tensor x, Tensor y, BatchShape batch, RopeTable ropeTable)
    {
        saved.Release();
        (input, shape, rope) = (x, batch, ropeTable);
        int n = batch.N;
        q = saved.Keep(n, Heads * HeadDim);
        k = saved.Keep(n, KvHeads * HeadDim);
        v = saved.Keep(n, KvHeads * HeadDim);
        att = saved.Keep(n, Heads * HeadDim);
        lse = saved.Keep(batch.B, Heads, batch.T);
        QProj.Forward(x, q);
        KProj.Forward(x, k);
        VProj.Forward(x, v);
        fixed (int* positions = batch.Positions)
        {
            Rope.Forward(q.F32Ptr, ropeTable, batch.B, batch.T, Heads, HeadDim, positions);
            Rope.Forward(k.F32Ptr, ropeTable, batch.B, batch.T, KvHeads, HeadDim, positions);
            Attention.Forward(q.F32Ptr, k.F32Ptr, v.F32Ptr, att.F32Ptr, lse.F32Ptr, batch.B, batch.T, Heads, KvHeads, HeadDim, positions);
        }

        OProj.Forward(att, y);
    }

    /// <summary>
    /// Inference with a KV cache: x (B·Tn, C) are Tn new tokens per row at positions past … past+Tn−1;
    /// their rotated keys and values are written into <paramref name="keyCache"/>/<paramref name="valueCache"/>
    /// (B, TMax, NKV, HS) and the queries attend to positions 0 … their own. y (B·Tn, C). Keeps nothing.
    /// </summary>
    public void ForwardCached(Tensor x, Tensor y, int b, int tn, int past, Tensor keyCache, Tensor valueCache, RopeTable ropeTable)
    {
        int n = b * tn, tmax = keyCache.Dim(1), kvWidth = KvHeads * HeadDim;
        using var qt = Tensor.Empty(DType.F32, n, Heads * HeadDim);
        using var kt = Tensor.Empty(DType.F32, n, kvWidth);
        using var vt = Tensor.Empty(DType.F32, n, kvWidth);
        using var at = Tensor.Empty(DType.F32, n, Heads * HeadDim);
        QProj.Forward(x, qt);
        KProj.Forward(x, kt);
        VProj.Forward(x, vt);
        var positions = new int[n];
        for (int i = 0; i < n; i++)
        {
            positions[i] = past + (i % tn);
        }

        fixed (int* pp = positions)
        {
            Rope.Forward(qt.F32Ptr, ropeTable, b, tn, Heads, HeadDim, pp);
            Rope.Forward(kt.F32Ptr, ropeTable, b, tn, KvHeads, HeadDim, pp);
        }

        for (int bi = 0; bi < b; bi++)
        {
            long to = (((long)bi * tmax) + past) * kvWidth, from = (long)bi * tn * kvWidth;
            new ReadOnlySpan<float>(kt.F32Ptr + from, tn * kvWidth).CopyTo(new Span<float>(keyCache.F32Ptr + to, tn * kvWidth));
            new ReadOnlySpan<float>(vt.F32Ptr + from, tn * kvWidth).CopyTo(new Span<float>(valueCache.F32Ptr + to, tn * kvWidth));
        }

        AttentionDecode.Forward(qt.F32Ptr, keyCache.F32Ptr, valueCache.F32Ptr, at.F32Ptr, b, tn, past, tmax, Heads, KvHeads, HeadDim);
        OProj.Forward(at, y);
    }

    /// <summary>dy (N,C) -> dx (N,C) overwritten; weight gradients for trainable projections. Releases the activations.</summary>
    public void Backward(Tensor dy, Tensor dx)
    {
        if (saved.IsEmpty)
        {
            throw new InvalidOperationException("SelfAttention.Backward called without a preceding Forward");
        }

        int n = shape.N;
        using var datt = Tensor.Empty(DType.F32, n, Heads * HeadDim);
        OProj.Backward(dy, att!, datt);
        using var dq = Tensor.Empty(DType.F32, n, Heads * HeadDim);
        using var dk = Tensor.Empty(DType.F32, n, KvHeads * HeadDim);
        using var dv = Tensor.Empty(DType.F32, n, KvHeads * HeadDim);
        fixed (int* positions = shape.Positions)
        {
            Attention.Backward(datt.F32Ptr, q!.F32Ptr, k!.F32Ptr, v!.F32Ptr, att!.F32Ptr, lse!.F32Ptr, dq.F32Ptr, dk.F32Ptr, dv.F32Ptr, shape.B, shape.T, Heads, KvHeads, HeadDim, positions);
            Rope.Backward(dq.F32Ptr, rope!, shape.B, shape.T, Heads, HeadDim, positions);
            Rope.Backward(dk.F32Ptr, rope!, shape.B, shape.T, KvHeads, HeadDim, positions);
        }

        QProj.Backward(dq, input!, dx);
        KProj.Backward(dk, input!, dx, accumulateDx: true);
        VProj.Backward(dv, input!, dx, accumulateDx: true);
        ReleaseActivations();
    }

    /// <summary>Drops saved activations (after Backward, or to recompute them later).</summary>
    public void ReleaseActivations()
    {
        saved.Release();
        (input, q, k, v, att, lse) = (null, null, null, null, null, null);
        foreach (var p in Projections())
        {
            p.ReleaseActivations();
        }
    }

    /// <summary>Projections.</summary>
    public IEnumerable<Linear> Projections() => [QProj, KProj, VProj, OProj];

    /// <inheritdoc/>
    public void Dispose()
    {
        ReleaseActivations();
        foreach (var p in Projections())
        {
            p.Dispose();
        }
    }

    private static void Expect(Linear l, int outFeatures, int inFeatures)
    {
        if (l.OutFeatures != outFeatures || l.InFeatures != inFeatures)
        {
            throw new ArgumentException($"'{l.Weight.Name}' has shape {Tensor.Format(l.Weight.Value.Shape)}; expected [{outFeatures}, {inFeatures}] from the head counts");
        }
    }
}
