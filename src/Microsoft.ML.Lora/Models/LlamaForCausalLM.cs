using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// Decoder-only Llama family causal LM (Llama, Mistral, Qwen2; SmolLM and TinyLlama are Llama):
/// embed_tokens → layers → norm → lm_head (or the embedding when tie_word_embeddings). When the config has
/// <see cref="LlamaConfig.NumLabels"/> (a ForSequenceClassification config) the head is <c>score</c>
/// (NumLabels, C), never tied, always F32, and the logits of every position are class scores (see
/// <see cref="SequenceClassification"/> for pooling at each row's last token). A tied checkpoint may store its
/// one matrix as <c>model.embed_tokens.weight</c> or only as <c>lm_head.weight</c> (or name the other in its
/// safetensors metadata); it loads as <see cref="EmbedTokens"/> either way and saves in the layout it came in
/// (<see cref="TiedLayout"/>).
/// Parameter names are Hugging Face's keys. Forward/backward per module; weight gradients only for
/// trainable parameters (all start frozen).
/// </summary>
public sealed class LlamaForCausalLM : IDisposable
{
    private RopeTable? rope;
    private RopeTable? localRope;

    private LlamaForCausalLM(LlamaConfig config, WeightSource weights)
    {
        Config = config;
        int c = config.HiddenSize, hs = config.HeadDim, nh = config.NumAttentionHeads, nkv = config.NumKeyValueHeads, inter = config.IntermediateSize;
        float eps = (float)config.RmsNormEps;

        // Gemma's norms scale by (1 + w): a new one starts at w = 0, a plain one at w = 1.
        RmsNormLayer NormLayer(string name, int length) =>
            new(weights.Vector(name, length, config.Gemma ? 0f : 1f), eps) { WeightOffset = config.NormWeightOffset };
        try
        {
            if (config.TieWordEmbeddings)
            {
                (EmbedTokens, TiedLayout) = weights.Tied(TiedWeightLayout.EmbeddingName, TiedWeightLayout.HeadName, config.VocabSize, c);
            }
            else
            {
                EmbedTokens = weights.Matrix(TiedWeightLayout.EmbeddingName, config.VocabSize, c);
            }

            Layers = new DecoderLayer[config.NumHiddenLayers];
            for (int i = 0; i < Layers.Length; i++)
            {
                string p = $"model.layers.{i}.";
                var attn = config.FusedProjections
                    ? new SelfAttention(
                        weights.Linear(p + "self_attn.qkv_proj", (nh + (2 * nkv)) * hs, c, bias: false),
                        weights.Linear(p + "self_attn.o_proj", c, nh * hs, bias: false),
                        nh,
                        nkv,
                        hs)
                    {
                        SlidingWindow = config.SlidingWindowOfLayer(i),
                    }
                    : new SelfAttention(
                        weights.Linear(p + "self_attn.q_proj", nh * hs, c, config.QkvBias),
                        weights.Linear(p + "self_attn.k_proj", nkv * hs, c, config.QkvBias),
                        weights.Linear(p + "self_attn.v_proj", nkv * hs, c, config.QkvBias),
                        weights.Linear(p + "self_attn.o_proj", c, nh * hs, config.OBias),
                        nh,
                        nkv,
                        hs,
                        config.QkNorm ? NormLayer(p + "self_attn.q_norm.weight", hs) : null,
                        config.QkNorm ? NormLayer(p + "self_attn.k_norm.weight", hs) : null)
                    {
                        SlidingWindow = config.SlidingWindowOfLayer(i),
                        Scale = config.AttentionScale,
                        Softcap = (float)(config.AttnLogitSoftcapping ?? 0),
                    };
                var mlp = config.FusedProjections
                    ? new Mlp(
                        weights.Linear(p + "mlp.gate_up_proj", 2 * inter, c, bias: false),
                        weights.Linear(p + "mlp.down_proj", c, inter, bias: false))
                    : new Mlp(
                        weights.Linear(p + "mlp.gate_proj", inter, c, config.MlpBias),
                        weights.Linear(p + "mlp.up_proj", inter, c, config.MlpBias),
                        weights.Linear(p + "mlp.down_proj", c, inter, config.MlpBias))
                    {
                        GeluGate = config.Gemma,
                    };
                Layers[i] = new DecoderLayer(
                    i,
                    NormLayer(p + "input_layernorm.weight", c),
                    attn,
                    NormLayer(p + "post_attention_layernorm.weight", c),
                    mlp,
                    config.Gemma ? NormLayer(p + "pre_feedforward_layernorm.weight", c) : null,
                    config.Gemma ? NormLayer(p + "post_feedforward_layernorm.weight", c) : null);
            }

            Norm = NormLayer("model.norm.weight", c);
            LmHead = config.NumLabels is int labels
                ? new Linear(weights.Head(SequenceClassification.HeadWeightName, labels, c), null, SequenceClassification.HeadName)
                : new Linear(config.TieWordEmbeddings ? EmbedTokens : weights.Matrix("lm_head.weight", config.VocabSize, c), null, "lm_head");
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>The parsed config.json.</summary>
    public LlamaConfig Config { get; }

    /// <summary>model.embed_tokens.weight (V,C).</summary>
    public Parameter EmbedTokens { get; } = null!;

    /// <summary>model.layers.</summary>
    public DecoderLayer[] Layers { get; } = [];

    /// <summary>model.norm.</summary>
    public RmsNormLayer Norm { get; } = null!;

    /// <summary>
    /// The output head: lm_head (V,C), sharing <see cref="EmbedTokens"/> when embeddings are tied, or for a
    /// classifier <c>score</c> (NumLabels,C).
    /// </summary>
    public Linear LmHead { get; } = null!;

    /// <summary>Where the model's parameters live and its operations run (<see cref="Backend.Native"/> unless moved with <see cref="To"/>).</summary>
    public Backend Backend => EmbedTokens.Value.Backend;

    /// <summary>
    /// Moves every parameter (base weights, norms, adapters, gradients) to <paramref name="backend"/>, one
    /// transfer each; frozen weights keep their dtype (NF4 stays packed). Optimizers made before the move
    /// must be made again. Returns this model.
    /// </summary>
    public LlamaForCausalLM To(Backend backend)
    {
        ArgumentNullException.ThrowIfNull(backend);
        if (ReferenceEquals(backend, Backend))
        {
            return this;
        }

        foreach (var layer in Layers)
        {
            layer.ReleaseActivations();
        }

        EmbedTokens.MoveTo(backend);
        foreach (var linear in Linears())
        {
            linear.MoveTo(backend);
        }

        foreach (var norm in Layers.SelectMany(static l => l.Norms()).Append(Norm))
        {
            norm.Weight.MoveTo(backend);
        }

        InputsEmbedsGrad?.Dispose();
        InputsEmbedsGrad = null;
        return this;
    }

    /// <summary>Recompute each layer's activations in Backward (gradient checkpointing).</summary>
    public bool GradientCheckpointing
    {
        get => Layers.Length > 0 && Layers[0].Recompute;
        set
        {
            foreach (var l in Layers)
            {
                l.Recompute = value;
            }
        }
    }

    /// <summary>
    /// When set, <see cref="ForwardBackward(CausalLmBatch)"/> keeps d loss / d(embedding output) (B·T, C) in
    /// <see cref="InputsEmbedsGrad"/> (for tests and analysis).
    /// </summary>
    public bool KeepInputsEmbedsGrad { get; set; }

    /// <summary>Gradient of the loss with respect to the embedding output from the last backward.</summary>
    public Tensor? InputsEmbedsGrad { get; private set; }

    /// <summary>Loads a Hugging Face model folder (config.json + safetensors); Linear and embedding weights in <paramref name="dtype"/>, norms and biases F32.</summary>
    /// <param name="directory">The model folder.</param>
    /// <param name="dtype">Dtype of the Linear and embedding weights.</param>
    /// <param name="cancellationToken">Checked before each tensor is read; a cancelled load keeps nothing.</param>
    public static LlamaForCausalLM Load(string directory, DType dtype = DType.F32, CancellationToken cancellationToken = default)
    {
        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"'{directory}' is not a Hugging Face model folder: config.json not found", configPath);
        }

        var config = LlamaConfig.Load(configPath);
        using var folder = SafeTensorsFolder.Open(directory);
        return new LlamaForCausalLM(config, new FolderWeights(folder, dtype, null, cancellationToken)) { SourceDirectory = Path.GetFullPath(directory) };
    }

    /// <summary>
    /// Loads a Hugging Face model folder as a sequence classifier with <paramref name="numLabels"/> classes, as
    /// transformers' <c>AutoModelForSequenceClassification.from_pretrained(dir, num_labels=K)</c> does: a causal-LM
    /// folder keeps its body and gets a new <c>score</c> head drawn from N(0, 0.02²) (transformers' default
    /// initializer_range) with <paramref name="seed"/>, its lm_head unused; a classification folder must have
    /// <paramref name="numLabels"/> labels and keeps its trained head.
    /// </summary>
    /// <param name="directory">The model folder.</param>
    /// <param name="numLabels">Number of classes (the score head's width).</param>
    /// <param name="dtype">Dtype of the body's Linear and embedding weights; the head is always F32 (it trains fully).</param>
    /// <param name="labelNames">Class names by id (id2label), or null for the folder's (or LABEL_0…).</param>
    /// <param name="seed">Seed of a new head.</param>
    /// <exception cref="InvalidDataException">The folder is a classifier with another number of labels.</exception>
    public static LlamaForCausalLM LoadForSequenceClassification(string directory, int numLabels, DType dtype = DType.F32, IReadOnlyList<string>? labelNames = null, int seed = 0)
    {
        string configPath = Path.Combine(directory, "config.json");
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"'{directory}' is not a Hugging Face model folder: config.json not found", configPath);
        }

        var stored = LlamaConfig.Load(configPath);
        if (stored.NumLabels is int have && have != numLabels)
        {
            throw new InvalidDataException($"{Path.GetFullPath(configPath)}: the folder is a classifier with {have} labels ({string.Join(", ", stored.Id2Label)}); asked for {numLabels} — train from its causal-LM base or ask for {have}");
        }

        var config = stored.ForSequenceClassification(numLabels, labelNames ?? (stored.NumLabels is null ? null : stored.Id2Label));
        using var folder = SafeTensorsFolder.Open(directory);
        var newHead = stored.NumLabels is null ? new Random(seed) : null;
        return new LlamaForCausalLM(config, new FolderWeights(folder, dtype, newHead)) { SourceDirectory = Path.GetFullPath(directory) };
    }

    /// <summary>
    /// For a tied model (<see cref="LlamaConfig.TieWordEmbeddings"/>), the name its one matrix is saved under and
    /// the alias its safetensors metadata gives, as in the folder it was loaded from (so a save keeps the layout it
    /// came in); <c>model.embed_tokens.weight</c> alone, transformers' layout, for a new model. Null when untied.
    /// </summary>
    public TiedWeightLayout? TiedLayout { get; }

    /// <summary>The folder this model was loaded from (tokenizer files are copied from it on save), or null.</summary>
    public string? SourceDirectory { get; private init; }

    /// <summary>Saves the base weights as a Hugging Face model folder; see <see cref="ModelFolderWriter.Save"/>.</summary>
    public void Save(string directory, DType? dtype = null, IProgress<long>? progress = null, CancellationToken cancellationToken = default) =>
        ModelFolderWriter.Save(this, directory, dtype, progress, cancellationToken);

    /// <summary>A randomly initialised model (N(0, 0.02) matrices, unit norms), e.g. for benchmarks.</summary>
    public static LlamaForCausalLM CreateRandom(LlamaConfig config, DType dtype = DType.F32, int seed = 0) =>
        new(config, new RandomWeights(dtype, seed));

    /// <summary>Every distinct parameter, in checkpoint order.</summary>
    public IEnumerable<Parameter> Parameters()
    {
        yield return EmbedTokens;
        foreach (var l in Layers)
        {
            foreach (var p in l.Parameters())
            {
                yield return p;
            }
        }

        yield return Norm.Weight;
        foreach (var p in LmHead.Parameters())
        {
            if (!ReferenceEquals(p, EmbedTokens))
            {
                yield return p;
            }
        }
    }

    /// <summary>Adapter state shared by every adapter of this model (training flag, dropout seed).</summary>
    public LoraRuntime LoraRuntime { get; } = new();

    /// <summary>Every Linear with its module path (<c>model.layers.0.self_attn.q_proj</c>, …, <c>lm_head</c> or <c>score</c>), in checkpoint order.</summary>
    public IEnumerable<Linear> Linears() => Layers.SelectMany(static l => l.Projections()).Append(LmHead);

    /// <summary>
    /// Every parameter that receives a gradient: trainable base weights and, once adapters are
    /// attached, the active adapters' parameters. What an optimizer updates and a checkpoint saves.
    /// </summary>
    public IEnumerable<Parameter> TrainableParameters() => Parameters().Where(static p => p.Trainable);

    /// <summary>
    /// Seed of the random masks (LoRA dropout) of the next forward pass. A trainer sets it per
    /// micro-step from its own seeded state, so masks depend only on (seed, step) and a resumed run
    /// draws the same masks as an uninterrupted one.
    /// </summary>
    public ulong DropoutSeed { get; set; }

    /// <summary>Marks every parameter trainable or frozen.</summary>
    public void SetTrainable(bool trainable)
    {
        foreach (var p in Parameters())
        {
            p.Trainable = trainable;
        }
    }

    /// <summary>Zeros every gradient.</summary>
    public void ZeroGrad()
    {
        foreach (var p in Parameters())
        {
            p.ZeroGrad();
        }
    }

    /// <summary>
    /// Inference forward: summed loss over the batch's targets; copies logits (B·T, V) into
    /// <paramref name="logits"/> when given. Keeps no activations.
    /// </summary>
    public LossResult Forward(CausalLmBatch batch, Tensor? logits = null) => Run(batch, backward: false, logits);

    /// <summary>
    /// Forward and backward for a training step: gradients of the mean token loss of this batch are
    /// accumulated into trainable parameters; returns the summed loss and token count.
    /// </summary>
    public LossResult ForwardBackward(CausalLmBatch batch) => Run(batch, backward: true, logitsOut: null);

    /// <summary>
    /// Each token's cross-entropy −ln p(target) (B·T values; 0 where the target is −100), without gradients: summed
    /// over a row's completion, the negated sequence log-probability that preference objectives compare.
    /// </summary>
    public float[] TokenLosses(CausalLmBatch batch)
    {
        float[]? losses = null;
        Run(batch, backward: false, logitsOut: null, tokenWeights: l => losses = l);
        return losses!;
    }

    /// <summary>
    /// Forward and backward for an objective of the token losses: <paramref name="tokenWeights"/> receives each token's
    /// cross-entropy (B·T, 0 where ignored) and returns d objective / d(token loss) per token (0 where ignored); the
    /// gradients of the objective are accumulated into trainable parameters. Weights of 1/N on the N counted tokens
    /// give <see cref="ForwardBackward(CausalLmBatch)"/>; DPO and GRPO give each sequence its own weight.
    /// </summary>
    public LossResult ForwardBackward(CausalLmBatch batch, Func<float[], float[]> tokenWeights)
    {
        ArgumentNullException.ThrowIfNull(tokenWeights);
        return Run(batch, backward: true, logitsOut: null, tokenWeights: tokenWeights);
    }

    /// <summary>
    /// Generation step: <paramref name="ids"/> (B,Tn) are the next Tn tokens of each row after the
    /// <see cref="KvCache.Length"/> tokens already in <paramref name="cache"/>; their keys and values are
    /// appended, and <paramref name="lastLogits"/> (B,V) receives the logits of each row's last new token.
    /// </summary>
    public void ForwardCached(int[] ids, KvCache cache, Tensor lastLogits)
    {
        int b = cache.Batch, c = Config.HiddenSize, v = Config.OutputSize;
        if (ids.Length == 0 || ids.Length % b != 0)
        {
            throw new ArgumentException($"ids must hold B·Tn tokens for the cache's B = {b} rows; got {ids.Length}", nameof(ids));
        }

        int tn = ids.Length / b, past = cache.Length, n = ids.Length;
        if (past + tn > cache.MaxTokens)
        {
            throw new ArgumentOutOfRangeException(nameof(ids), $"{past} cached + {tn} new tokens exceed the cache's {cache.MaxTokens}; create a larger KvCache");
        }

        if (lastLogits.DType != DType.F32 || lastLogits.Length != (long)b * v)
        {
            throw new ArgumentException($"lastLogits must be F32 ({b}, {v}); got {lastLogits}", nameof(lastLogits));
        }

        ValidateIds(new CausalLmBatch(b, tn, ids, Enumerable.Repeat(CrossEntropy.IgnoreIndex, n).ToArray()));
        LoraRuntime.Training = false;
        var backend = Backend;
        if (!ReferenceEquals(cache.Keys(0).Backend, backend))
        {
            throw new ArgumentException($"the KV cache lives on {cache.Keys(0).Backend} and the model on {backend}: create the cache with the model's backend", nameof(cache));
        }

        var x = backend.Empty(DType.F32, n, c);
        var next = backend.Empty(DType.F32, n, c);
        try
        {
            backend.EmbeddingGather(ids, EmbedTokens.Value, x);
            ScaleEmbeddings(x);
            for (int i = 0; i < Layers.Length; i++)
            {
                Layers[i].ForwardCached(x, next, b, tn, past, cache.Keys(i), cache.Values(i), RopeFor(cache.MaxTokens, i));
                (x, next) = (next, x);
            }

            using var last = backend.Empty(DType.F32, b, c);
            for (int bi = 0; bi < b; bi++)
            {
                backend.Copy(x, (((long)bi * tn) + tn - 1) * c, last, (long)bi * c, c);
            }

            using var normed = backend.Empty(DType.F32, b, c);
            using var rstd = backend.Empty(DType.F32, b);
            Norm.Forward(last, normed, rstd);
            if (ReferenceEquals(lastLogits.Backend, backend))
            {
                var target = lastLogits.Rank == 2 ? lastLogits : lastLogits.View(b, v);
                LmHead.Forward(normed, target);
                CapLogits(target);
            }
            else
            {
                // Logits go to the host for sampling: the one transfer of a decoding step.
                using var logits = backend.Empty(DType.F32, b, v);
                LmHead.Forward(normed, logits);
                CapLogits(logits);
                Tensor.CopyConverting(logits, lastLogits);
            }

            cache.Length = past + tn;
        }
        finally
        {
            x.Dispose();
            next.Dispose();
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        EmbedTokens?.Dispose();
        foreach (var l in Layers)
        {
            l?.Dispose();
        }

        Norm?.Dispose();
        LmHead?.Dispose();
        rope?.Dispose();
        localRope?.Dispose();
        InputsEmbedsGrad?.Dispose();
    }

    private LossResult Run(CausalLmBatch batch, bool backward, Tensor? logitsOut, Func<float[], float[]?>? tokenWeights = null)
    {
        ValidateIds(batch);
        if (backward && Linears().FirstOrDefault(static l => l.MergedAdapter is not null) is { } merged)
        {
            throw new InvalidOperationException($"{merged.Name}: adapter '{merged.MergedAdapter}' is merged into the base weight; unmerge before training");
        }

        LoraRuntime.Training = backward;
        LoraRuntime.DropoutSeed = DropoutSeed;
        var shape = new BatchShape(batch.B, batch.T, batch.Positions);
        int n = shape.N, c = Config.HiddenSize, v = Config.OutputSize;

        // Residual stream x_0 … x_L (N,C): the inputs each layer's Backward needs again.
        var backend = Backend;
        var xs = new Tensor[Layers.Length + 1];
        var lnf = backend.Empty(DType.F32, n, c);
        var rstd = backend.Empty(DType.F32, n);
        var logits = backend.Empty(DType.F32, n, v);
        var losses = backend.Empty(DType.F32, n);
        try
        {
            xs[0] = backend.Empty(DType.F32, n, c);
            backend.EmbeddingGather(batch.InputIds, EmbedTokens.Value, xs[0]);
            ScaleEmbeddings(xs[0]);
            for (int i = 0; i < Layers.Length; i++)
            {
                xs[i + 1] = backend.Empty(DType.F32, n, c);
                Layers[i].Forward(xs[i], xs[i + 1], shape, RopeFor(batch.T, i), forBackward: backward);
                if (!backward)
                {
                    xs[i].Dispose();
                }
            }

            Norm.Forward(xs[^1], lnf, rstd);
            LmHead.Forward(lnf, logits);
            CapLogits(logits);
            if (logitsOut is not null)
            {
                Tensor.CopyConverting(logits, logitsOut);
            }

            // The gradient through the cap needs the capped logits, which the loss overwrites with its gradient.
            using var capped = backward && FinalSoftcap > 0 ? backend.Empty(DType.F32, n, v) : null;
            if (capped is not null)
            {
                backend.Copy(logits, 0, capped, 0, logits.Length);
            }

            int count = batch.CountTargets();
            float scale = tokenWeights is not null ? 1f : count == 0 ? 0f : 1f / count;
            backend.CrossEntropy(logits, batch.Targets, losses, backward ? logits : null, scale);
            double sum = backend.Sum(losses);
            if (tokenWeights is not null)
            {
                using var host = losses.IsHost ? null : backend.ToHost(losses);
                float[] weights = tokenWeights((host ?? losses).AsF32().ToArray()) ?? [];
                if (backward)
                {
                    if (weights.Length != n)
                    {
                        throw new InvalidOperationException($"the token-weight function returned {weights.Length} weights for {n} tokens (B·T = {batch.B}·{batch.T})");
                    }

                    backend.ScaleRows(logits, weights);
                }
            }
            if (capped is not null)
            {
                backend.SoftcapBackward(logits, capped, FinalSoftcap);
            }

            if (backward)
            {
                Backward(batch, xs, lnf, rstd, logits);
            }

            return new LossResult(sum, count);
        }
        finally
        {
            foreach (var x in xs)
            {
                x?.Dispose();
            }

            lnf.Dispose();
            rstd.Dispose();
            logits.Dispose();
            losses.Dispose();
        }
    }

    private void Backward(CausalLmBatch batch, Tensor[] xs, Tensor lnf, Tensor rstd, Tensor dlogits)
    {
        var backend = Backend;
        int n = batch.B * batch.T, c = Config.HiddenSize;
        var dx = backend.Empty(DType.F32, n, c);
        var dprev = backend.Empty(DType.F32, n, c);
        try
        {
            using (var dlnf = backend.Empty(DType.F32, n, c))
            {
                LmHead.Backward(dlogits, lnf, dlnf);
                Norm.Backward(dlnf, xs[^1], rstd, dx);
            }

            for (int i = Layers.Length - 1; i >= 0; i--)
            {
                Layers[i].Backward(dx, xs[i], dprev);
                (dx, dprev) = (dprev, dx);
            }

            // dx is the gradient of the scaled embeddings; the embedding output's is Config.EmbeddingScale times it.
            ScaleEmbeddings(dx);

            if (EmbedTokens.Trainable)
            {
                backend.EmbeddingScatterAdd(batch.InputIds, dx, EmbedTokens.Grad!);
            }

            InputsEmbedsGrad?.Dispose();
            InputsEmbedsGrad = null;
            if (KeepInputsEmbedsGrad)
            {
                (InputsEmbedsGrad, dx) = (dx, null!);
            }
        }
        finally
        {
            dx?.Dispose();
            dprev.Dispose();
        }
    }

    private void ValidateIds(CausalLmBatch batch)
    {
        int v = Config.VocabSize, outputs = Config.OutputSize;
        for (int i = 0; i < batch.InputIds.Length; i++)
        {
            int id = batch.InputIds[i], target = batch.Targets[i];
            if ((uint)id >= (uint)v)
            {
                throw new ArgumentOutOfRangeException(nameof(batch), id, $"batch row {i / batch.T}, position {i % batch.T}: token id {id} is outside the vocabulary [0, {v})");
            }

            if (target != CrossEntropy.IgnoreIndex && (uint)target >= (uint)outputs)
            {
                string range = Config.NumLabels is null ? $"the vocabulary [0, {v})" : $"the classes [0, {outputs})";
                throw new ArgumentOutOfRangeException(nameof(batch), target, $"batch row {i / batch.T}, position {(i % batch.T) + 1}: label {target} is outside {range} and is not -100");
            }
        }
    }

    // The RoPE table of layer `layer` for positions up to t: the model's, or Gemma 3's local one on sliding layers.
    private RopeTable RopeFor(int t, int layer)
    {
        var (theta, scaling) = Config.RopeOfLayer(layer);
        bool local = theta != Config.RopeTheta || scaling != Config.RopeScaling;
        ref var table = ref local ? ref localRope : ref rope;
        if (table is null || table.MaxPositions < t)
        {
            table?.Dispose();
            table = RopeTable.Create(Config.HeadDim, theta, scaling, Math.Max(t, 64));
        }

        return table;
    }

    // Gemma multiplies the embeddings by √hidden (and so their gradient); a no-op elsewhere.
    private void ScaleEmbeddings(Tensor x)
    {
        if (Config.EmbeddingScale != 1f)
        {
            x.Backend.Scale(x, Config.EmbeddingScale);
        }
    }

    // Gemma 2's final logit soft-capping of a causal LM's logits; a no-op elsewhere.
    private float FinalSoftcap => Config.NumLabels is null ? (float)(Config.FinalLogitSoftcapping ?? 0) : 0f;

    private void CapLogits(Tensor logits)
    {
        if (FinalSoftcap > 0)
        {
            logits.Backend.SoftcapForward(logits, FinalSoftcap);
        }
    }

    /// <summary>Where the weights of a new model come from.</summary>
    private abstract class WeightSource
    {
        public abstract Parameter Matrix(string name, int rows, int cols);

        /// <summary>
        /// A tied matrix named <paramref name="name"/>, stored under that name or only under
        /// <paramref name="twin"/> (a tied checkpoint keeps one copy, under either name), and how it was stored.
        /// </summary>
        public virtual (Parameter Value, TiedWeightLayout Layout) Tied(string name, string twin, int rows, int cols) =>
            (Matrix(name, rows, cols), new TiedWeightLayout(name, null));

        public abstract Parameter Vector(string name, int length, float fill);

        /// <summary>A classification head: F32 whatever the body's dtype (it is trained fully, PEFT's modules_to_save).</summary>
        public abstract Parameter Head(string name, int rows, int cols);

        public Linear Linear(string prefix, int outFeatures, int inFeatures, bool bias) =>
            new(Matrix(prefix + ".weight", outFeatures, inFeatures), bias ? Vector(prefix + ".bias", outFeatures, 0f) : null);
    }

    private sealed class FolderWeights(SafeTensorsFolder folder, DType dtype, Random? newHead, CancellationToken cancellationToken = default) : WeightSource
    {
        public override Parameter Matrix(string name, int rows, int cols)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return new(name, folder.Read(name, dtype, [rows, cols]));
        }

        public override (Parameter Value, TiedWeightLayout Layout) Tied(string name, string twin, int rows, int cols)
        {
            cancellationToken.ThrowIfCancellationRequested();
            string source = folder.Contains(name) || !folder.Contains(twin) ? name : twin;
            var value = new Parameter(name, folder.Read(source, dtype, [rows, cols]));
            string stored = folder.Resolve(source);
            string other = stored == name ? twin : name;
            return (value, new TiedWeightLayout(stored, folder.Aliases.TryGetValue(other, out string? target) && target == stored ? other : null));
        }

        public override Parameter Head(string name, int rows, int cols) =>
            newHead is null ? new(name, folder.Read(name, DType.F32, [rows, cols])) : RandomWeights.Normal(name, rows, cols, newHead, DType.F32);

        public override Parameter Vector(string name, int length, float fill)
        {
            cancellationToken.ThrowIfCancellationRequested();
            return new(name, folder.Read(name, DType.F32, [length]));
        }
    }

    private sealed class RandomWeights(DType dtype, int seed) : WeightSource
    {
        private readonly Random random = new(seed);

        public static Parameter Normal(string name, int rows, int cols, Random random, DType dtype)
        {
            using var f32 = Tensor.Empty(DType.F32, rows, cols);
            RandomFill.Normal(f32.AsF32(), random, std: 0.02);

            return new Parameter(name, f32.To(dtype));
        }

        public override Parameter Matrix(string name, int rows, int cols) => Normal(name, rows, cols, random, dtype);

        public override Parameter Head(string name, int rows, int cols) => Normal(name, rows, cols, random, DType.F32);

        public override Parameter Vector(string name, int length, float fill)
        {
            var t = Tensor.Empty(DType.F32, length);
            t.AsF32().Fill(fill);
            return new Parameter(name, t);
        }
    }
}
