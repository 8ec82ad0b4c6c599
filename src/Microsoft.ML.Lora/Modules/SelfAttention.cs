using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// Llama self-attention: q/k/v projections (optionally biased, or one fused qkv_proj as in Phi-3), optionally a per-head RMSNorm of q and k
/// (Qwen3's q_norm/k_norm), RoPE on q and k, causal GQA, o_proj. Saves the input, rotated q and k, v, the
/// attention output and the log-sum-exp (and, with the norms, the projected q and k and their rstd).
/// </summary>
public sealed class SelfAttention : IDisposable
{
    private readonly SavedTensors saved = new();
    private Tensor? input;
    private Tensor? q;
    private Tensor? k;
    private Tensor? v;
    private Tensor? att;
    private Tensor? lse;
    private Tensor? qRaw;
    private Tensor? kRaw;
    private Tensor? qRstd;
    private Tensor? kRstd;
    private BatchShape shape;
    private RopeTable? rope;

    /// <summary>Assembles the block; projection shapes must agree with the head counts.</summary>
    public SelfAttention(Linear qProj, Linear kProj, Linear vProj, Linear oProj, int heads, int kvHeads, int headDim, RmsNormLayer? qNorm = null, RmsNormLayer? kNorm = null)
    {
        if ((qNorm is null) != (kNorm is null))
        {
            throw new ArgumentException("q_norm and k_norm come together");
        }

        foreach (var norm in new[] { qNorm, kNorm })
        {
            if (norm is not null && norm.Weight.Value.Length != headDim)
            {
                throw new ArgumentException($"'{norm.Weight.Name}' has {norm.Weight.Value.Length} elements; expected head_dim {headDim}");
            }
        }

        RequireGrouped(heads, kvHeads);
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
        QNorm = qNorm;
        KNorm = kNorm;
    }

    /// <summary>
    /// Assembles the block with one fused projection <paramref name="qkvProj"/> ((NH + 2·NKV)·HS, C): its output
    /// columns are q, then k, then v (Phi-3's <c>qkv_proj</c>); LoRA adapts the fused matrix as PEFT does.
    /// </summary>
    public SelfAttention(Linear qkvProj, Linear oProj, int heads, int kvHeads, int headDim)
    {
        RequireGrouped(heads, kvHeads);
        Expect(qkvProj, (heads + (2 * kvHeads)) * headDim, qkvProj.InFeatures);
        Expect(oProj, qkvProj.InFeatures, heads * headDim);
        QkvProj = qkvProj;
        OProj = oProj;
        Heads = heads;
        KvHeads = kvHeads;
        HeadDim = headDim;
    }

    /// <summary>q_proj (NH·HS, C); null when fused (<see cref="QkvProj"/>).</summary>
    public Linear? QProj { get; }

    /// <summary>k_proj (NKV·HS, C); null when fused.</summary>
    public Linear? KProj { get; }

    /// <summary>v_proj (NKV·HS, C); null when fused.</summary>
    public Linear? VProj { get; }

    /// <summary>The fused qkv_proj ((NH + 2·NKV)·HS, C) of Phi-3, or null.</summary>
    public Linear? QkvProj { get; }

    /// <summary>o_proj (C, NH·HS).</summary>
    public Linear OProj { get; }

    /// <summary>NH.</summary>
    public int Heads { get; }

    /// <summary>NKV.</summary>
    public int KvHeads { get; }

    /// <summary>HS.</summary>
    public int HeadDim { get; }

    /// <summary>Sliding window of this layer: a query sees only its last this-many keys, itself included; 0 for none.</summary>
    public int SlidingWindow { get; init; }

    /// <summary>Score scale; 0 for 1/√HS (Gemma: query_pre_attn_scalar^−½).</summary>
    public float Scale { get; init; }

    /// <summary>Attention logit soft-capping (Gemma 2); 0 for none.</summary>
    public float Softcap { get; init; }

    /// <summary>Sliding window, scale and soft-capping as the backend takes them.</summary>
    public AttentionSpec Spec => new(SlidingWindow, Scale, Softcap);

    /// <summary>Per-head RMSNorm of the queries (HS), or null.</summary>
    public RmsNormLayer? QNorm { get; }

    /// <summary>Per-head RMSNorm of the keys (HS), or null.</summary>
    public RmsNormLayer? KNorm { get; }

    /// <summary>The q/k norm weights (none without them).</summary>
    public IEnumerable<Parameter> NormParameters() =>
        QNorm is null ? [] : [QNorm.Weight, KNorm!.Weight];

    /// <summary>Whether activations from a Forward are held.</summary>
    public bool HasActivations => !saved.IsEmpty;

    /// <summary>x (N,C) -> y (N,C). <paramref name="x"/> must stay alive until Backward.</summary>
    public void Forward(Tensor x, Tensor y, BatchShape batch, RopeTable ropeTable)
    {
        saved.Release();
        (input, shape, rope) = (x, batch, ropeTable);
        var backend = x.Backend;
        int n = batch.N;
        q = saved.Keep(backend, n, Heads * HeadDim);
        k = saved.Keep(backend, n, KvHeads * HeadDim);
        v = saved.Keep(backend, n, KvHeads * HeadDim);
        att = saved.Keep(backend, n, Heads * HeadDim);
        lse = saved.Keep(backend, batch.B, Heads, batch.T);
        if (QNorm is null)
        {
            Project(x, q, k, v);
        }
        else
        {
            qRaw = saved.Keep(backend, n, Heads * HeadDim);
            kRaw = saved.Keep(backend, n, KvHeads * HeadDim);
            qRstd = saved.Keep(backend, n * Heads);
            kRstd = saved.Keep(backend, n * KvHeads);
            Project(x, qRaw, kRaw, v);
            HeadNorm(QNorm, qRaw, q, qRstd, Heads);
            HeadNorm(KNorm!, kRaw, k, kRstd, KvHeads);
        }

        backend.RopeForward(q, ropeTable, batch.B, batch.T, Heads, batch.Positions);
        backend.RopeForward(k, ropeTable, batch.B, batch.T, KvHeads, batch.Positions);
        backend.AttentionForward(q, k, v, att, lse, batch.B, batch.T, Heads, KvHeads, batch.Positions, Spec);

        OProj.Forward(att, y);
    }

    /// <summary>
    /// Inference with a KV cache: x (B·Tn, C) are Tn new tokens per row at positions past … past+Tn−1;
    /// their rotated keys and values are written into <paramref name="keyCache"/>/<paramref name="valueCache"/>
    /// (B, TMax, NKV, HS) and the queries attend to positions 0 … their own. y (B·Tn, C). Keeps nothing.
    /// </summary>
    public void ForwardCached(Tensor x, Tensor y, int b, int tn, int past, Tensor keyCache, Tensor valueCache, RopeTable ropeTable)
    {
        var backend = x.Backend;
        int n = b * tn, tmax = keyCache.Dim(1), kvWidth = KvHeads * HeadDim;
        using var qt = backend.Empty(DType.F32, n, Heads * HeadDim);
        using var kt = backend.Empty(DType.F32, n, kvWidth);
        using var vt = backend.Empty(DType.F32, n, kvWidth);
        using var at = backend.Empty(DType.F32, n, Heads * HeadDim);
        if (QNorm is null)
        {
            Project(x, qt, kt, vt);
        }
        else
        {
            using var qIn = backend.Empty(DType.F32, n, Heads * HeadDim);
            using var kIn = backend.Empty(DType.F32, n, kvWidth);
            using var qRstdT = backend.Empty(DType.F32, n * Heads);
            using var kRstdT = backend.Empty(DType.F32, n * KvHeads);
            Project(x, qIn, kIn, vt);
            HeadNorm(QNorm, qIn, qt, qRstdT, Heads);
            HeadNorm(KNorm!, kIn, kt, kRstdT, KvHeads);
        }

        var positions = new int[n];
        for (int i = 0; i < n; i++)
        {
            positions[i] = past + (i % tn);
        }

        backend.RopeForward(qt, ropeTable, b, tn, Heads, positions);
        backend.RopeForward(kt, ropeTable, b, tn, KvHeads, positions);
        for (int bi = 0; bi < b; bi++)
        {
            long to = (((long)bi * tmax) + past) * kvWidth, from = (long)bi * tn * kvWidth;
            backend.Copy(kt, from, keyCache, to, (long)tn * kvWidth);
            backend.Copy(vt, from, valueCache, to, (long)tn * kvWidth);
        }

        backend.AttentionDecode(qt, keyCache, valueCache, at, b, tn, past, Heads, KvHeads, Spec);
        OProj.Forward(at, y);
    }

    /// <summary>dy (N,C) -> dx (N,C) overwritten; weight gradients for trainable projections. Releases the activations.</summary>
    public void Backward(Tensor dy, Tensor dx)
    {
        if (saved.IsEmpty)
        {
            throw new InvalidOperationException("SelfAttention.Backward called without a preceding Forward");
        }

        var backend = dy.Backend;
        int n = shape.N;
        using var datt = backend.Empty(DType.F32, n, Heads * HeadDim);
        OProj.Backward(dy, att!, datt);
        using var dq = backend.Empty(DType.F32, n, Heads * HeadDim);
        using var dk = backend.Empty(DType.F32, n, KvHeads * HeadDim);
        using var dv = backend.Empty(DType.F32, n, KvHeads * HeadDim);
        backend.AttentionBackward(datt, q!, k!, v!, att!, lse!, dq, dk, dv, shape.B, shape.T, Heads, KvHeads, shape.Positions, Spec);
        backend.RopeBackward(dq, rope!, shape.B, shape.T, Heads, shape.Positions);
        backend.RopeBackward(dk, rope!, shape.B, shape.T, KvHeads, shape.Positions);

        // With the norms, dq/dk are gradients of the normed heads: take them back to the projections' outputs.
        using var dqRaw = QNorm is null ? null : backend.Empty(DType.F32, n, Heads * HeadDim);
        using var dkRaw = QNorm is null ? null : backend.Empty(DType.F32, n, KvHeads * HeadDim);
        if (QNorm is not null)
        {
            HeadNormBackward(QNorm, dq, qRaw!, qRstd!, dqRaw!, Heads);
            HeadNormBackward(KNorm!, dk, kRaw!, kRstd!, dkRaw!, KvHeads);
        }

        ProjectBackward(dqRaw ?? dq, dkRaw ?? dk, dv, dx);
        ReleaseActivations();
    }

    /// <summary>Drops saved activations (after Backward, or to recompute them later).</summary>
    public void ReleaseActivations()
    {
        saved.Release();
        (input, q, k, v, att, lse) = (null, null, null, null, null, null);
        (qRaw, kRaw, qRstd, kRstd) = (null, null, null, null);
        foreach (var p in Projections())
        {
            p.ReleaseActivations();
        }
    }

    /// <summary>Projections: q, k, v (or the fused qkv) and o.</summary>
    public IEnumerable<Linear> Projections() => QkvProj is { } fused ? [fused, OProj] : [QProj!, KProj!, VProj!, OProj];

    /// <inheritdoc/>
    public void Dispose()
    {
        ReleaseActivations();
        foreach (var p in Projections())
        {
            p.Dispose();
        }

        QNorm?.Dispose();
        KNorm?.Dispose();
    }

    // x (N,C) -> q (N, NH·HS), k, v (N, NKV·HS): three projections, or the fused one split by columns.
    private void Project(Tensor x, Tensor q, Tensor k, Tensor v)
    {
        if (QkvProj is null)
        {
            QProj!.Forward(x, q);
            KProj!.Forward(x, k);
            VProj!.Forward(x, v);
            return;
        }

        var backend = x.Backend;
        int qWidth = Heads * HeadDim, kvWidth = KvHeads * HeadDim;
        using var qkv = backend.Empty(DType.F32, x.Dim(0), qWidth + (2 * kvWidth));
        QkvProj.Forward(x, qkv);
        backend.CopyColumns(qkv, 0, q, 0, qWidth);
        backend.CopyColumns(qkv, qWidth, k, 0, kvWidth);
        backend.CopyColumns(qkv, qWidth + kvWidth, v, 0, kvWidth);
    }

    // dq, dk, dv of the projections' outputs -> dx (N,C) overwritten, weight gradients of trainable projections.
    private void ProjectBackward(Tensor dq, Tensor dk, Tensor dv, Tensor dx)
    {
        if (QkvProj is null)
        {
            QProj!.Backward(dq, input!, dx);
            KProj!.Backward(dk, input!, dx, accumulateDx: true);
            VProj!.Backward(dv, input!, dx, accumulateDx: true);
            return;
        }

        var backend = dq.Backend;
        int qWidth = Heads * HeadDim, kvWidth = KvHeads * HeadDim;
        using var dqkv = backend.Empty(DType.F32, dq.Dim(0), qWidth + (2 * kvWidth));
        backend.CopyColumns(dq, 0, dqkv, 0, qWidth);
        backend.CopyColumns(dk, 0, dqkv, qWidth, kvWidth);
        backend.CopyColumns(dv, 0, dqkv, qWidth + kvWidth, kvWidth);
        QkvProj.Backward(dqkv, input!, dx);
    }

    // x (N, heads·HS) → y (N, heads·HS), each head normalized over its HS values; rstd (N·heads).
    private void HeadNorm(RmsNormLayer norm, Tensor x, Tensor y, Tensor rstd, int heads)
    {
        int rows = x.Dim(0) * heads;
        using var xv = x.View(rows, HeadDim);
        using var yv = y.View(rows, HeadDim);
        norm.Forward(xv, yv, rstd);
    }

    private void HeadNormBackward(RmsNormLayer norm, Tensor dy, Tensor x, Tensor rstd, Tensor dx, int heads)
    {
        int rows = x.Dim(0) * heads;
        using var dyv = dy.View(rows, HeadDim);
        using var xv = x.View(rows, HeadDim);
        using var dxv = dx.View(rows, HeadDim);
        norm.Backward(dyv, xv, rstd, dxv);
    }

    private static void RequireGrouped(int heads, int kvHeads)
    {
        if (heads % kvHeads != 0)
        {
            throw new ArgumentException($"num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
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
