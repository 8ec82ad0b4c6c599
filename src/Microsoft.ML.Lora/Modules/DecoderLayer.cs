using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// One pre-norm Llama decoder layer:
/// h = x + self_attn(input_layernorm(x)); out = h + mlp(post_attention_layernorm(h)).
/// Gemma's "sandwich" layer (with <see cref="PreFeedforwardLayerNorm"/> and <see cref="PostFeedforwardLayerNorm"/>)
/// also normalizes each block's output: h = x + post_attention_layernorm(self_attn(input_layernorm(x)));
/// out = h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))).
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
    private Tensor? attnOut;
    private Tensor? rstdAttn;
    private Tensor? mlpOut;
    private Tensor? rstdMlp;
    private BatchShape shape;
    private RopeTable? rope;

    /// <summary>Assembles a layer.</summary>
    public DecoderLayer(int index, RmsNormLayer inputLayerNorm, SelfAttention selfAttn, RmsNormLayer postAttentionLayerNorm, Mlp mlp, RmsNormLayer? preFeedforwardLayerNorm = null, RmsNormLayer? postFeedforwardLayerNorm = null)
    {
        if ((preFeedforwardLayerNorm is null) != (postFeedforwardLayerNorm is null))
        {
            throw new ArgumentException("pre_feedforward_layernorm and post_feedforward_layernorm come together");
        }

        Index = index;
        InputLayerNorm = inputLayerNorm;
        SelfAttn = selfAttn;
        PostAttentionLayerNorm = postAttentionLayerNorm;
        Mlp = mlp;
        PreFeedforwardLayerNorm = preFeedforwardLayerNorm;
        PostFeedforwardLayerNorm = postFeedforwardLayerNorm;
    }

    /// <summary>Layer index i of <c>model.layers.i</c>.</summary>
    public int Index { get; }

    /// <summary>input_layernorm.</summary>
    public RmsNormLayer InputLayerNorm { get; }

    /// <summary>self_attn.</summary>
    public SelfAttention SelfAttn { get; }

    /// <summary>post_attention_layernorm: the MLP's input norm, or in a sandwich layer the attention output's norm.</summary>
    public RmsNormLayer PostAttentionLayerNorm { get; }

    /// <summary>mlp.</summary>
    public Mlp Mlp { get; }

    /// <summary>pre_feedforward_layernorm of a sandwich (Gemma) layer, or null.</summary>
    public RmsNormLayer? PreFeedforwardLayerNorm { get; }

    /// <summary>post_feedforward_layernorm of a sandwich (Gemma) layer, or null.</summary>
    public RmsNormLayer? PostFeedforwardLayerNorm { get; }

    /// <summary>Every norm of the layer, the attention's per-head q/k norms included.</summary>
    public IEnumerable<RmsNormLayer> Norms() =>
        new[] { InputLayerNorm, PostAttentionLayerNorm, PreFeedforwardLayerNorm, PostFeedforwardLayerNorm, SelfAttn.QNorm, SelfAttn.KNorm }.OfType<RmsNormLayer>();

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
        if (PreFeedforwardLayerNorm is null)
        {
            SelfAttn.ForwardCached(norm, hidden, b, tn, past, keyCache, valueCache, ropeTable);
            backend.Add(hidden, x, hidden);
            PostAttentionLayerNorm.Forward(hidden, norm, rstd);
            Mlp.Forward(norm, output);
        }
        else
        {
            using var block = backend.Empty(DType.F32, n, c);
            SelfAttn.ForwardCached(norm, block, b, tn, past, keyCache, valueCache, ropeTable);
            PostAttentionLayerNorm.Forward(block, hidden, rstd);
            backend.Add(hidden, x, hidden);
            PreFeedforwardLayerNorm.Forward(hidden, norm, rstd);
            Mlp.Forward(norm, block);
            PostFeedforwardLayerNorm!.Forward(block, output, rstd);
        }

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
        if (PreFeedforwardLayerNorm is not null)
        {
            SandwichBackward(dout, x, dx);
            ReleaseActivations();
            return;
        }

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
        (attnOut, rstdAttn, mlpOut, rstdMlp) = (null, null, null, null);
    }

    private void SandwichBackward(Tensor dout, Tensor x, Tensor dx)
    {
        var backend = x.Backend;
        int n = x.Dim(0), c = x.Dim(1);
        using var dblock = backend.Empty(DType.F32, n, c);
        using var dln = backend.Empty(DType.F32, n, c);
        using var dh = backend.Empty(DType.F32, n, c);
        PostFeedforwardLayerNorm!.Backward(dout, mlpOut!, rstdMlp!, dblock);
        Mlp.Backward(dblock, dln);
        PreFeedforwardLayerNorm!.Backward(dln, h!, rstd2!, dh);
        backend.Add(dh, dout, dh);
        PostAttentionLayerNorm.Backward(dh, attnOut!, rstdAttn!, dblock);
        SelfAttn.Backward(dblock, dln);
        InputLayerNorm.Backward(dln, x, rstd1!, dx);
        backend.Add(dx, dh, dx);
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
        if (PreFeedforwardLayerNorm is not null)
        {
            yield return PreFeedforwardLayerNorm.Weight;
            yield return PostFeedforwardLayerNorm!.Weight;
        }

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
        PreFeedforwardLayerNorm?.Dispose();
        PostFeedforwardLayerNorm?.Dispose();
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
        if (PreFeedforwardLayerNorm is not null)
        {
            attnOut = saved.Keep(backend, n, c);
            rstdAttn = saved.Keep(backend, n);
            mlpOut = saved.Keep(backend, n, c);
            rstdMlp = saved.Keep(backend, n);
            SelfAttn.Forward(ln1, attnOut, shape, rope!);
            PostAttentionLayerNorm.Forward(attnOut, h, rstdAttn);
            backend.Add(h, x, h);
            PreFeedforwardLayerNorm.Forward(h, ln2, rstd2);
            Mlp.Forward(ln2, mlpOut);
            PostFeedforwardLayerNorm!.Forward(mlpOut, output, rstdMlp);
            backend.Add(output, h, output);
            return;
        }

        SelfAttn.Forward(ln1, h, shape, rope!);
        backend.Add(h, x, h);
        PostAttentionLayerNorm.Forward(h, ln2, rstd2);
        Mlp.Forward(ln2, output);
        backend.Add(output, h, output);
    }
}
