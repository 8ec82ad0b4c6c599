using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// One pre-norm Llama decoder layer:
/// h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
/// With <see cref="Recompute"/>, Forward keeps nothing and Backward runs Forward again first
/// (gradient checkpointing: one extra forward per layer for activations of one layer at a time).
/// </summary>
public sealed class DecoderLayer : IDisposable
{
    private readonly SavedTensors saved = new();
    private Tensor? ln1;
    private Tensor? rstd1;
    private Tensor? h;
    private Tensor? ln2;
    private Tensor? rstd2;
    private BatchShape shape;
    private RopeTable? rope;

    /// <summary>Assembles a layer.</summary>
    public DecoderLayer(int index, RmsNormLayer inputLayerNorm, SelfAttention selfAttn, RmsNormLayer postAttentionLayerNorm, Mlp mlp)
    {
        Index = index;
        InputLayerNorm = inputLayerNorm;
        SelfAttn = selfAttn;
        PostAttentionLayerNorm = postAttentionLayerNorm;
        Mlp = mlp;
    }

    /// <summary>Layer index i of <c>model.layers.i</c>.</summary>
    public int Index { get; }

    /// <summary>input_layernorm.</summary>
    public RmsNormLayer InputLayerNorm { get; }

    /// <summary>self_attn.</summary>
    public SelfAttention SelfAttn { get; }

    /// <summary>post_attention_layernorm.</summary>
    public RmsNormLayer PostAttentionLayerNorm { get; }

    /// <summary>mlp.</summary>
    public Mlp Mlp { get; }

    /// <summary>Recompute activations in Backward instead of keeping them from Forward.</summary>
    public bool Recompute { get; set; }

    /// <summary>
    /// x (N,C) -> out (N,C). <paramref name="x"/> must stay alive (and unchanged) until Backward.
    /// With <paramref name="forBackward"/> false (inference) nothing is kept.
    /// </summary>
    public void Forward(Tensor x, Tensor output, BatchShape batch, RopeTable ropeTable, bool forBackward)
    {
        (shape, rope) = (batch, ropeTable);
        Run(x, output);
        if (!forBackward || Recompute)
        {
            ReleaseActivations();
        }
    }

    /// <summary>Inference over Tn new tokens per row with a KV cache (see <see cref="SelfAttention.ForwardCached"/>): x (B·Tn, C) -> out (B·Tn, C).</summary>
    public void ForwardCached(Tensor x, Tensor output, int b, int tn, int past, Tensor keyCache, Tensor valueCache, RopeTable ropeTable)
    {
        var backend = x.Backend;
        int n = x.Dim(0), c = x.Dim(1);
        using var norm = backend.Empty(DType.F32, n, c);
        using var rstd = backend.Empty(DType.F32, n);
        using var hidden = backend.Empty(DType.F32, n, c);
        InputLayerNorm.Forward(x, norm, rstd);
        SelfAttn.ForwardCached(norm, hidden, b, tn, past, keyCache, valueCache, ropeTable);
        backend.Add(hidden, x, hidden);
        PostAttentionLayerNorm.Forward(hidden, norm, rstd);
        Mlp.Forward(norm, output);
        Mlp.ReleaseActivations();
        backend.Add(output, hidden, output);
    }

    /// <summary>dout (N,C), the same x as Forward -> dx (N,C) overwritten.</summary>
    public void Backward(Tensor dout, Tensor x, Tensor dx)
    {
        if (saved.IsEmpty)
        {
            if (rope is null)
            {
                throw new InvalidOperationException($"layer {Index}: Backward called without a preceding Forward");
            }

            using var scratch = x.Backend.Empty(DType.F32, x.Dim(0), x.Dim(1));
            Run(x, scratch);
        }

        var backend = x.Backend;
        int n = x.Dim(0), c = x.Dim(1);
        using (var dln2 = backend.Empty(DType.F32, n, c))
        using (var dh = backend.Empty(DType.F32, n, c))
        {
            Mlp.Backward(dout, dln2);
            PostAttentionLayerNorm.Backward(dln2, h!, rstd2!, dh);
            backend.Add(dh, dout, dh);

            var dln1 = dln2;
            SelfAttn.Backward(dh, dln1);
            InputLayerNorm.Backward(dln1, x, rstd1!, dx);
            backend.Add(dx, dh, dx);
        }

        ReleaseActivations();
    }

    /// <summary>Drops saved activations of this layer and its blocks.</summary>
    public void ReleaseActivations()
    {
        saved.Release();
        SelfAttn.ReleaseActivations();
        Mlp.ReleaseActivations();
        (ln1, rstd1, h, ln2, rstd2) = (null, null, null, null, null);
    }

    /// <summary>Every linear projection of the layer.</summary>
    public IEnumerable<Linear> Projections() => SelfAttn.Projections().Concat(Mlp.Projections());

    /// <summary>Every parameter of the layer: norms, projections, biases and adapters.</summary>
    public IEnumerable<Parameter> Parameters()
    {
        yield return InputLayerNorm.Weight;
        foreach (var p in SelfAttn.Projections().SelectMany(static l => l.Parameters()).Concat(SelfAttn.NormParameters()))
        {
            yield return p;
        }

        yield return PostAttentionLayerNorm.Weight;
        foreach (var p in Mlp.Projections().SelectMany(static l => l.Parameters()))
        {
            yield return p;
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ReleaseActivations();
        InputLayerNorm.Dispose();
        SelfAttn.Dispose();
        PostAttentionLayerNorm.Dispose();
        Mlp.Dispose();
    }

    private void Run(Tensor x, Tensor output)
    {
        saved.Release();
        var backend = x.Backend;
        int n = x.Dim(0), c = x.Dim(1);
        ln1 = saved.Keep(backend, n, c);
        rstd1 = saved.Keep(backend, n);
        h = saved.Keep(backend, n, c);
        ln2 = saved.Keep(backend, n, c);
        rstd2 = saved.Keep(backend, n);

        InputLayerNorm.Forward(x, ln1, rstd1);
        SelfAttn.Forward(ln1, h, shape, rope!);
        backend.Add(h, x, h);
        PostAttentionLayerNorm.Forward(h, ln2, rstd2);
        Mlp.Forward(ln2, output);
        backend.Add(output, h, output);
    }
}
