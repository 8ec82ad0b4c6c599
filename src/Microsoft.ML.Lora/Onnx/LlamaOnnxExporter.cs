using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Onnx;

/// <summary>Options of <see cref="LlamaOnnxExporter.Export"/>.</summary>
public sealed record OnnxExportOptions
{
    /// <summary>Store weights in <c>&lt;file&gt;.data</c> beside the model (automatic past 2 GB).</summary>
    public bool ExternalData { get; init; }

    /// <summary>Positions the exported RoPE tables cover; default min(max_position_embeddings, 8192).</summary>
    public int? MaxPositions { get; init; }

    /// <summary>
    /// Generation with a KV cache, in ONNX Runtime GenAI's layout: adds inputs <c>position_ids</c> (batch ×
    /// sequence) and <c>past_key_values.N.key/value</c> (batch × kv heads × past × head size), outputs
    /// <c>present.N.key/value</c> (past + sequence); <c>attention_mask</c> then covers past + sequence.
    /// </summary>
    public bool KvCache { get; init; }

    /// <summary>
    /// Store the embedding and every Linear weight as float16 (half the file), each followed by a Cast to
    /// float: arithmetic stays F32, only the weights are rounded (round to nearest even).
    /// </summary>
    public bool Float16Weights { get; init; }

    /// <summary>
    /// Keep the base weights unmerged and make every adapted Linear read its adapter from graph inputs:
    /// <c>{module}.lora_A</c> (rank × in), <c>{module}.lora_B</c> (out × rank) and <c>{module}.lora_scale</c>
    /// (shape [1]), rank symbolic per module. y = x·Wᵀ + s·(x·Aᵀ)·Bᵀ, so one exported base serves any adapter with
    /// the same target modules (see <see cref="LlamaOnnxExporter.AdapterInputs"/> and
    /// <see cref="LlamaOnnxExporter.ExportAdapter"/>). Every adapter input defaults to zero (rank 1), so the file
    /// runs as the base model when no adapter is fed.
    /// </summary>
    public bool AdaptersAsInputs { get; init; }

    /// <summary>
    /// Store the decoder layers' Linear weights in ONNX Runtime's 4-bit <c>MatMulNBits</c> form (com.microsoft,
    /// block <see cref="Int4BlockSize"/>; see <see cref="Int4Blocks"/>); the embedding and lm_head stay F32 (or F16).
    /// </summary>
    public bool Int4 { get; init; }

    /// <summary>
    /// With <see cref="KvCache"/>: attention through ONNX Runtime's fused <c>GroupQueryAttention</c> (com.microsoft), as
    /// GenAI's own model builder writes it. RoPE, the causal and sliding-window masks, soft-capping and the KV heads'
    /// sharing happen inside the operator; the cache is one buffer per layer that past and present share
    /// (batch × kv heads × max length × head size; <c>past_present_share_buffer</c> in GenAI), and each row's length
    /// is read from <c>attention_mask</c> (rows right-padded). <c>position_ids</c> stays an input but is not read.
    /// </summary>
    public bool GroupQueryAttention { get; init; }

    /// <summary>Elements per 4-bit block with <see cref="Int4"/>: 32 (default) or 64.</summary>
    public int Int4BlockSize { get; init; } = Int4Blocks.DefaultBlockSize;
}

/// <summary>
/// Exports a Llama-family causal LM to ONNX (opset 17, standard operators only) with F32 weights: inputs
/// <c>input_ids</c> and <c>attention_mask</c> (int64, batch × sequence, both dynamic), output <c>logits</c>
/// (batch × sequence × vocab). Active adapters are merged into the exported weights (the model itself is
/// not changed). Rows are expected right-padded (positions 0…T−1, as in training); masked keys are
/// excluded from attention. Node names follow the module paths (<c>model.layers.3.self_attn/…</c>).
/// A sequence classifier (config with NumLabels) has output <c>logits</c> (batch × NumLabels) instead: the
/// <c>score</c> head at each row's last position whose attention_mask is 1 (rows right-padded, as
/// <see cref="SequenceClassification.Logits"/> pools); it has no KV-cache form.
/// </summary>
public static class LlamaOnnxExporter
{
    /// <summary>Writes <paramref name="model"/> to <paramref name="path"/> (atomically, with its .data file when external).</summary>
    public static void Export(LlamaForCausalLM model, string path, OnnxExportOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new OnnxExportOptions();
        if (options.KvCache && model.Config.NumLabels is int labels)
        {
            throw new ArgumentException($"KvCache exports a model for generation; this model is a sequence classifier ({model.Config.Architecture}, {labels} labels) that scores a whole row in one pass — export it without KvCache");
        }

        if (options.Int4 && options.Int4BlockSize is not (32 or 64))
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.Int4BlockSize, $"Int4BlockSize must be 32 or 64 (ONNX Runtime's MatMulNBits blocks); got {options.Int4BlockSize}");
        }

        if (options.GroupQueryAttention && !options.KvCache)
        {
            throw new ArgumentException("GroupQueryAttention is the KV-cache decoding layout: set KvCache too");
        }

        if (options.GroupQueryAttention && model.Config.HeadDim % 16 != 0)
        {
            throw new ArgumentException($"GroupQueryAttention needs a head size that is a multiple of 16 (ONNX Runtime's kernels); this model's head_dim is {model.Config.HeadDim}: export it without GroupQueryAttention");
        }

        if (options.AdaptersAsInputs && options.Int4)
        {
            throw new ArgumentException("Int4 and AdaptersAsInputs cannot be combined: 4-bit layers take no adapter inputs");
        }

        if (options.AdaptersAsInputs && !model.Linears().Any(static l => l.Applied is not null))
        {
            throw new ArgumentException("AdaptersAsInputs needs an active adapter on the model: its target modules decide which layers take adapter inputs");
        }

        var graph = new Builder(model.Config, options.KvCache, options.Float16Weights, options.AdaptersAsInputs, options.Int4 ? options.Int4BlockSize : 0, options.GroupQueryAttention);
        graph.Build(model, options.MaxPositions ?? Math.Min(model.Config.MaxPositionEmbeddings, 8192));
        graph.Graph.RemoveUnusedInitializers();
        bool microsoftOps = options.Int4 || options.GroupQueryAttention;
        OnnxModelWriter.Save(graph.Graph, path, new OnnxSaveOptions { ExternalData = options.ExternalData, ExtraOpsets = microsoftOps ? [("com.microsoft", 1)] : [] });
    }

    /// <summary>
    /// The inputs an <see cref="OnnxExportOptions.AdaptersAsInputs"/> model takes for the model's active adapter:
    /// name → (shape, F32 values), ready to feed to ONNX Runtime.
    /// </summary>
    public static IReadOnlyDictionary<string, (int[] Shape, float[] Values)> AdapterInputs(LlamaForCausalLM model)
    {
        var inputs = new Dictionary<string, (int[] Shape, float[] Values)>();
        foreach (var linear in model.Linears())
        {
            if (linear.Applied is { } adapter)
            {
                inputs[linear.Name + ".lora_A"] = (adapter.A.Value.Shape.ToArray(), adapter.A.Value.ToFloatArray());
                inputs[linear.Name + ".lora_B"] = (adapter.B.Value.Shape.ToArray(), adapter.B.Value.ToFloatArray());
                inputs[linear.Name + ".lora_scale"] = ([1], [adapter.Scale]);
            }
        }

        return inputs;
    }

    /// <summary>
    /// Writes the model's active adapter as an ONNX Runtime LoRA adapter file (<c>.onnx_adapter</c>, see
    /// <see cref="OnnxAdapterFile"/>) whose parameters are the inputs of an <see cref="OnnxExportOptions.AdaptersAsInputs"/>
    /// export of the same base: <c>OrtLoraAdapter</c> + <c>RunOptions.AddActiveLoraAdapter</c>, or GenAI's
    /// <c>Adapters.LoadAdapter</c> + <c>Generator.SetActiveAdapter</c>, switch adapters without reloading the base.
    /// </summary>
    public static void ExportAdapter(LlamaForCausalLM model, string path)
    {
        var inputs = AdapterInputs(model);
        if (inputs.Count == 0)
        {
            throw new ArgumentException("the model has no active adapter to export");
        }

        OnnxAdapterFile.Write(path, inputs);
    }

    private sealed class Builder(LlamaConfig config, bool kvCache, bool float16, bool adapterInputs, int int4BlockSize, bool gqa)
    {
        private int counter;

        public OnnxGraph Graph { get; } = new("llama");

        public void Build(LlamaForCausalLM model, int maxPositions)
        {
            int v = config.OutputSize;
            string total = kvCache ? "total_sequence" : "sequence";
            Graph.AddInput("input_ids", OnnxElementType.Int64, "batch", "sequence");
            Graph.AddInput("attention_mask", OnnxElementType.Int64, "batch", total);
            if (kvCache)
            {
                Graph.AddInput("position_ids", OnnxElementType.Int64, "batch", "sequence");
                for (int i = 0; i < config.NumHiddenLayers; i++)
                {
                    Graph.AddInput($"past_key_values.{i}.key", OnnxElementType.Float, "batch", config.NumKeyValueHeads, "past_sequence", config.HeadDim);
                    Graph.AddInput($"past_key_values.{i}.value", OnnxElementType.Float, "batch", config.NumKeyValueHeads, "past_sequence", config.HeadDim);
                }
            }

            if (config.NumLabels is null)
            {
                Graph.AddOutput("logits", OnnxElementType.Float, "batch", "sequence", v);
            }
            else
            {
                Graph.AddOutput("logits", OnnxElementType.Float, "batch", v);
            }

            Constants(maxPositions);

            // Query i sits at absolute position past + i; key j (0 … total−1) is masked when j > past + i or
            // attention_mask[b, j] = 0. The additive bias is (B,1,T,total). Built on first use (the fused
            // GroupQueryAttention layout masks inside the operator).
            string? queries = null, keys = null, hidden = null, bias = null;
            string Queries()
            {
                if (queries is null)
                {
                    string t = Node("Gather", "seq_len", [Node("Shape", "shape", ["input_ids"]), "const.one"], OnnxAttribute.Int("axis", 0));
                    queries = Node("Range", "positions", ["const.zero", t, "const.one"]);
                    keys = queries;
                    if (kvCache)
                    {
                        string all = Node("Gather", "total_len", [Node("Shape", "shape", ["attention_mask"]), "const.one"], OnnxAttribute.Int("axis", 0));
                        string past = Node("Sub", "past_len", [all, t]);
                        queries = Node("Add", "positions", [queries, past]);
                        keys = Node("Range", "positions", ["const.zero", all, "const.one"]);
                    }
                }

                return queries;
            }

            string Bias()
            {
                if (bias is null)
                {
                    string q = Queries();
                    string future = Node("Greater", "mask", [Node("Unsqueeze", "mask", [keys!, "const.axes0"]), Node("Unsqueeze", "mask", [q, "const.axes1"])]);
                    string paddingKeys = Node("Unsqueeze", "mask", [Node("Equal", "mask", ["attention_mask", "const.zero"]), "const.axes12"]);
                    hidden = Node("Or", "mask", [future, paddingKeys]);
                    bias = Node("Where", "mask", [hidden, "const.mask_min", "const.zero_f"]);
                }

                return bias;
            }

            // With a KV cache, rows may hold padding between their tokens (GenAI right-pads a batch's prompts and appends
            // after the padding): distances are counted in tokens, query positions from position_ids and key positions
            // as the running count of attention_mask − 1, (B,1,T,total).
            string? tokenDistance = null;
            string TokenDistance()
            {
                if (tokenDistance is null)
                {
                    string keyPositions = Node("Sub", "mask", [Node("CumSum", "mask", ["attention_mask", "const.one"]), "const.one"]);
                    tokenDistance = Node("Sub", "mask", [Node("Unsqueeze", "mask", ["position_ids", "const.axes13"]), Node("Unsqueeze", "mask", [keyPositions, "const.axes12"])]);
                }

                return tokenDistance;
            }

            // A sliding layer also hides keys W or more positions back: i − j ≥ W. One bias per distinct window.
            var slidingBiases = new Dictionary<int, string>();
            string BiasOf(int window)
            {
                string full = Bias();
                if (window <= 0)
                {
                    return full;
                }

                if (!slidingBiases.TryGetValue(window, out string? windowed))
                {
                    string limit = $"const.window_{window}";
                    Graph.AddInitializer(limit, [], [(long)window - 1]);
                    string distance = kvCache ? TokenDistance() : Node("Sub", "mask", [Node("Unsqueeze", "mask", [queries!, "const.axes1"]), Node("Unsqueeze", "mask", [keys!, "const.axes0"])]);
                    string old = Node("Greater", "mask", [distance, limit]);
                    windowed = Node("Where", "mask", [Node("Or", "mask", [hidden!, old]), "const.mask_min", "const.zero_f"]);
                    slidingBiases[window] = windowed;
                }

                return windowed;
            }

            // RoPE angles of each token: (T,HS) from positions 0…T−1, or (B,1,T,HS) from position_ids; per table
            // (Gemma 3's sliding layers have their own).
            var angles = new Dictionary<string, (string Cos, string Sin)>();
            (string Cos, string Sin) AnglesOf(int layer)
            {
                string table = RopeTableName(layer);
                if (!angles.TryGetValue(table, out var found))
                {
                    found = kvCache
                        ? (Node("Unsqueeze", "rope", [Node("Gather", "rope", [table + ".cos", "position_ids"], OnnxAttribute.Int("axis", 0)), "const.axes1"]),
                           Node("Unsqueeze", "rope", [Node("Gather", "rope", [table + ".sin", "position_ids"], OnnxAttribute.Int("axis", 0)), "const.axes1"]))
                        : (Node("Gather", "rope", [table + ".cos", Queries()], OnnxAttribute.Int("axis", 0)),
                           Node("Gather", "rope", [table + ".sin", Queries()], OnnxAttribute.Int("axis", 0)));
                    angles[table] = found;
                }

                return found;
            }

            // GroupQueryAttention reads each row's length − 1 (int32, from attention_mask; rows right-padded) and the
            // batch's total length.
            (string SeqLens, string Total)? lengths = null;
            (string SeqLens, string Total) Lengths()
            {
                if (lengths is null)
                {
                    string sum = Node("ReduceSum", "gqa", ["attention_mask", "const.axes1"], OnnxAttribute.Int("keepdims", 0));
                    string seqLens = Node("Cast", "gqa", [Node("Sub", "gqa", [sum, "const.one"])], OnnxAttribute.Int("to", (long)OnnxElementType.Int32));
                    string total = Node("Cast", "gqa", [Node("Gather", "gqa", [Node("Shape", "gqa", ["attention_mask"]), "const.one"], OnnxAttribute.Int("axis", 0))], OnnxAttribute.Int("to", (long)OnnxElementType.Int32));
                    lengths = (seqLens, total);
                }

                return lengths.Value;
            }

            Weight("model.embed_tokens.weight", model.EmbedTokens.Value, transpose: false);
            string x = Node("Gather", "model.embed_tokens", ["model.embed_tokens.weight", "input_ids"], OnnxAttribute.Int("axis", 0));
            if (config.EmbeddingScale != 1f)
            {
                // Gemma: embeddings times √hidden (float32).
                Graph.AddInitializer("const.embed_scale", [], [config.EmbeddingScale]);
                x = Node("Mul", "model.embed_tokens", [x, "const.embed_scale"]);
            }

            foreach (var layer in model.Layers)
            {
                string p = $"model.layers.{layer.Index}";
                bool sandwich = layer.PreFeedforwardLayerNorm is not null;
                string h = Norm($"{p}.input_layernorm", x, layer.InputLayerNorm);
                string attn;
                if (gqa)
                {
                    attn = FusedAttention($"{p}.self_attn", layer.Index, h, layer.SelfAttn, RopeTableName(layer.Index), Lengths());
                }
                else
                {
                    var (cos, sin) = AnglesOf(layer.Index);
                    attn = Attention($"{p}.self_attn", layer.Index, h, layer.SelfAttn, cos, sin, BiasOf(layer.SelfAttn.SlidingWindow));
                }
                if (sandwich)
                {
                    // Gemma: each block's output is normalized before the residual add.
                    attn = Norm($"{p}.post_attention_layernorm", attn, layer.PostAttentionLayerNorm);
                }

                x = Node("Add", p, [x, attn]);
                h = sandwich
                    ? Norm($"{p}.pre_feedforward_layernorm", x, layer.PreFeedforwardLayerNorm!)
                    : Norm($"{p}.post_attention_layernorm", x, layer.PostAttentionLayerNorm);
                var mlp = layer.Mlp;
                string gate, up;
                if (mlp.GateUpProj is { } gateUp)
                {
                    // Phi-3's fused gate_up_proj: the first I columns are the gate, the next I the up projection.
                    (gate, up) = SplitLast($"{p}.mlp", Linear(gateUp, h), mlp.Intermediate, mlp.Intermediate);
                }
                else
                {
                    gate = Linear(mlp.GateProj!, h);
                    up = Linear(mlp.UpProj!, h);
                }

                string act = mlp.GeluGate ? GeluTanh($"{p}.mlp", gate) : Node("Mul", $"{p}.mlp", [gate, Node("Sigmoid", $"{p}.mlp", [gate])]);
                string down = Linear(mlp.DownProj, Node("Mul", $"{p}.mlp", [act, up]));
                if (sandwich)
                {
                    down = Norm($"{p}.post_feedforward_layernorm", down, layer.PostFeedforwardLayerNorm!);
                }

                x = Node("Add", p, [x, down]);
            }

            string final = Norm("model.norm", x, model.Norm);
            string head = Linear(model.LmHead, final);
            if (config.NumLabels is null && config.FinalLogitSoftcapping is double cap)
            {
                head = Softcap("logits", head, (float)cap);
            }

            if (config.NumLabels is not null)
            {
                // Classifier: (B,T,K) -> (B,K) at each row's last real position, sum(attention_mask) − 1 (right padding).
                string length = Node("ReduceSum", "pool", ["attention_mask", "const.axes1"], OnnxAttribute.Int("keepdims", 1));
                string last = Node("Sub", "pool", [length, "const.one"]);
                head = Node("GatherND", "pool", [head, last], OnnxAttribute.Int("batch_dims", 1));
            }

            Graph.AddNode("Identity", [head], ["logits"], "logits");
        }

        private void Constants(int maxPositions)
        {
            Graph.AddInitializer("const.zero", [], [0L]);
            Graph.AddInitializer("const.one", [], [1L]);
            Graph.AddInitializer("const.axes0", [1], [0L]);
            Graph.AddInitializer("const.axes1", [1], [1L]);
            Graph.AddInitializer("const.axes2", [1], [2L]);
            Graph.AddInitializer("const.axes12", [2], [1L, 2L]);
            Graph.AddInitializer("const.axes13", [2], [1L, 3L]);
            Graph.AddInitializer("const.zero_f", [], [0f]);
            // Masked scores get float's lowest value rather than −∞: exp underflows to exactly 0 beside any open key,
            // and a query with no open key (a left-padded row's padding, as GenAI batches) stays finite instead of NaN.
            Graph.AddInitializer("const.mask_min", [], [float.MinValue]);
            Graph.AddInitializer("const.eps", [], [(float)config.RmsNormEps]);
            Graph.AddInitializer("const.scale", [], [config.AttentionScale != 0 ? config.AttentionScale : 1f / MathF.Sqrt(config.HeadDim)]);
            int hs = config.HeadDim, half = hs / 2;
            Graph.AddInitializer("const.half_split", [2], [(long)half, half]);

            // One table per RoPE base: full-width rows in the rotate-half layout (column i uses frequency i mod HS/2),
            // or GroupQueryAttention's half-width caches.
            foreach (int layer in Enumerable.Range(0, config.NumHiddenLayers).DistinctBy(RopeTableName).DefaultIfEmpty(0))
            {
                string name = RopeTableName(layer);
                var (theta, scaling) = config.RopeOfLayer(layer);
                using var table = RopeTable.Create(hs, theta, scaling, maxPositions);
                if (gqa)
                {
                    // GroupQueryAttention's caches: one row of HS/2 frequencies per position.
                    var cosHalf = new float[maxPositions * half];
                    var sinHalf = new float[maxPositions * half];
                    for (int p = 0; p < maxPositions; p++)
                    {
                        table.CosRow(p).CopyTo(cosHalf.AsSpan(p * half, half));
                        table.SinRow(p).CopyTo(sinHalf.AsSpan(p * half, half));
                    }

                    Graph.AddInitializer(name + ".cos_half", [maxPositions, half], cosHalf);
                    Graph.AddInitializer(name + ".sin_half", [maxPositions, half], sinHalf);
                    continue;
                }

                var cos = new float[maxPositions * hs];
                var sin = new float[maxPositions * hs];
                for (int p = 0; p < maxPositions; p++)
                {
                    var cr = table.CosRow(p);
                    var sr = table.SinRow(p);
                    for (int i = 0; i < hs; i++)
                    {
                        cos[(p * hs) + i] = cr[i % half];
                        sin[(p * hs) + i] = sr[i % half];
                    }
                }

                Graph.AddInitializer(name + ".cos", [maxPositions, hs], cos);
                Graph.AddInitializer(name + ".sin", [maxPositions, hs], sin);
            }
        }

        // "rope", or "rope_local" for a layer whose RoPE base differs (Gemma 3's sliding layers).
        private string RopeTableName(int layer) => config.RopeOfLayer(layer) == (config.RopeTheta, config.RopeScaling) ? "rope" : "rope_local";

        // x·½·(1 + tanh(√(2/π)·(x + 0.044715·x³))): PyTorch's tanh GELU (opset 17 has no Gelu op).
        private string GeluTanh(string scope, string x)
        {
            if (!Graph.Initializers.Any(static i => i.Name == "const.gelu_cubic"))
            {
                Graph.AddInitializer("const.gelu_cubic", [], [0.044715f]);
                Graph.AddInitializer("const.gelu_root", [], [(float)Math.Sqrt(2 / Math.PI)]);
                Graph.AddInitializer("const.half", [], [0.5f]);
                Graph.AddInitializer("const.one_f", [], [1f]);
            }

            string cube = Node("Mul", scope, [Node("Mul", scope, [x, x]), x]);
            string inner = Node("Mul", scope, [Node("Add", scope, [x, Node("Mul", scope, [cube, "const.gelu_cubic"])]), "const.gelu_root"]);
            string gate = Node("Mul", scope, [Node("Add", scope, [Node("Tanh", scope, [inner]), "const.one_f"]), "const.half"]);
            return Node("Mul", scope, [x, gate]);
        }

        // x -> cap·tanh(x/cap).
        private string Softcap(string scope, string x, float cap)
        {
            string name = $"const.softcap_{scope.Replace('.', '_')}";
            Graph.AddInitializer(name, [], [cap]);
            return Node("Mul", scope, [Node("Tanh", scope, [Node("Div", scope, [x, name])]), name]);
        }

        // x (…,C) -> x · rsqrt(mean(x²) + eps) · w over the last axis
        private string Norm(string scope, string x, RmsNormLayer norm)
        {
            // Gemma's (1 + w) is folded into the stored scale.
            float[] scale = norm.Weight.Value.ToFloatArray();
            if (norm.WeightOffset != 0)
            {
                System.Numerics.Tensors.TensorPrimitives.Add(scale, norm.WeightOffset, scale);
            }

            Graph.AddInitializer(norm.Weight.Name, [norm.Weight.Value.Length], scale);
            string sq = Node("Mul", scope, [x, x]);
            string mean = Node("ReduceMean", scope, [sq], OnnxAttribute.Ints("axes", -1), OnnxAttribute.Int("keepdims", 1));
            string rms = Node("Sqrt", scope, [Node("Add", scope, [mean, "const.eps"])]);
            return Node("Mul", scope, [Node("Div", scope, [x, rms]), norm.Weight.Name]);
        }

        // x (B,T,C) -> x · Wᵀ (+ b), W with its active adapter merged (a copy; the model is untouched).
        private string Linear(Linear linear, string x)
        {
            if (int4BlockSize > 0 && linear.Name is not ("lm_head" or SequenceClassification.HeadName))
            {
                return LinearInt4(linear, x);
            }

            string name = linear.Name + ".weight_t";
            if (!Graph.Initializers.Any(i => i.Name == name))
            {
                using var w = adapterInputs ? linear.Weight.Value.To(DType.F32) : linear.MergedWeightCopy();
                Weight(name, w, transpose: true);
            }

            string y = Node("MatMul", linear.Name, [x, name]);
            if (adapterInputs && linear.Applied is not null)
            {
                // y += s · (x · Aᵀ) · Bᵀ with A, B and s fed at run time.
                string a = linear.Name + ".lora_A", bIn = linear.Name + ".lora_B", scale = linear.Name + ".lora_scale";
                // Defaults (an input nobody feeds): rank-1 zeros and scale 0, the base model.
                Graph.AddInput(OnnxTensor.FromFloats(a, [1, linear.InFeatures], new float[linear.InFeatures]), linear.Name + ".rank", linear.InFeatures);
                Graph.AddInput(OnnxTensor.FromFloats(bIn, [linear.OutFeatures, 1], new float[linear.OutFeatures]), linear.OutFeatures, linear.Name + ".rank");
                Graph.AddInput(OnnxTensor.FromFloats(scale, [1], [0f]), 1);
                string down = Node("MatMul", linear.Name + ".lora", [x, Node("Transpose", linear.Name + ".lora", [a], OnnxAttribute.Ints("perm", 1, 0))]);
                string up = Node("MatMul", linear.Name + ".lora", [down, Node("Transpose", linear.Name + ".lora", [bIn], OnnxAttribute.Ints("perm", 1, 0))]);
                y = Node("Add", linear.Name + ".lora", [y, Node("Mul", linear.Name + ".lora", [up, scale])]);
            }

            if (linear.Bias is { } b)
            {
                Graph.AddInitializer(b.Name, [b.Value.Length], b.Value.ToFloatArray());
                y = Node("Add", linear.Name, [y, b.Name]);
            }

            return y;
        }

        // x (B,T,K) -> MatMulNBits(x, W (N,K) as 4-bit blocks) (+ b); an active adapter is merged first.
        private string LinearInt4(Linear linear, string x)
        {
            using var w = linear.MergedWeightCopy();
            int n = linear.OutFeatures, k = linear.InFeatures, blocks = (k + int4BlockSize - 1) / int4BlockSize;
            var (codes, scales, _) = Int4Blocks.Quantize(w.ToFloatArray(), n, k, int4BlockSize);
            string b = linear.Name + ".weight_q4", scale = linear.Name + ".weight_scales";
            Graph.AddInitializer(b, OnnxElementType.UInt8, [n, blocks, int4BlockSize / 2], codes);
            Graph.AddInitializer(scale, [(long)n * blocks], scales);
            string y = Next(linear.Name, "MatMulNBits");
            Graph.AddNode("MatMulNBits", [x, b, scale], [y], y + "/node", "com.microsoft",
                OnnxAttribute.Int("K", k), OnnxAttribute.Int("N", n), OnnxAttribute.Int("bits", 4), OnnxAttribute.Int("block_size", int4BlockSize));
            if (linear.Bias is { } bias)
            {
                Graph.AddInitializer(bias.Name, [bias.Value.Length], bias.Value.ToFloatArray());
                y = Node("Add", linear.Name, [y, bias.Name]);
            }

            return y;
        }

        private string Attention(string scope, int index, string h, SelfAttention attn, string cos, string sin, string bias)
        {
            int nh = attn.Heads, nkv = attn.KvHeads, hs = attn.HeadDim;
            string Heads(string projected, int heads)
            {
                string shape = $"{scope}.shape_{heads}";
                if (!Graph.Initializers.Any(i => i.Name == shape))
                {
                    Graph.AddInitializer(shape, [4], [0L, 0L, heads, hs]);
                }

                return Node("Transpose", scope, [Node("Reshape", scope, [projected, shape])], OnnxAttribute.Ints("perm", 0, 2, 1, 3));
            }

            var (qFlat, kFlat, vFlat) = Project(scope, h, attn);
            string q = Heads(qFlat, nh);
            string k = Heads(kFlat, nkv);
            if (attn.QNorm is { } qNorm)
            {
                // Qwen3: each head normalized over its HS values, before RoPE.
                q = Norm($"{scope}.q_norm", q, qNorm);
                k = Norm($"{scope}.k_norm", k, attn.KNorm!);
            }

            q = Rope(scope, q, cos, sin);
            k = Rope(scope, k, cos, sin);
            string v = Heads(vFlat, nkv);
            if (kvCache)
            {
                // present = past ++ new along the sequence axis; attention reads the whole present.
                string presentKey = $"present.{index}.key", presentValue = $"present.{index}.value";
                Graph.AddNode("Concat", [$"past_key_values.{index}.key", k], [presentKey], presentKey + "/node", "", OnnxAttribute.Int("axis", 2));
                Graph.AddNode("Concat", [$"past_key_values.{index}.value", v], [presentValue], presentValue + "/node", "", OnnxAttribute.Int("axis", 2));
                Graph.AddOutput(presentKey, OnnxElementType.Float, "batch", nkv, "total_sequence", hs);
                Graph.AddOutput(presentValue, OnnxElementType.Float, "batch", nkv, "total_sequence", hs);
                (k, v) = (presentKey, presentValue);
            }

            if (nh != nkv)
            {
                // (B,NKV,T,HS) -> (B,NKV,G,T,HS) -> (B,NH,T,HS): query head h reads kv head h / G.
                string expand = $"{scope}.expand", merged = $"{scope}.kv_shape";
                Graph.AddInitializer(expand, [5], [1L, 1L, nh / nkv, 1L, 1L]);
                Graph.AddInitializer(merged, [4], [0L, nh, -1L, hs]);
                k = Node("Reshape", scope, [Node("Expand", scope, [Node("Unsqueeze", scope, [k, "const.axes2"]), expand]), merged]);
                v = Node("Reshape", scope, [Node("Expand", scope, [Node("Unsqueeze", scope, [v, "const.axes2"]), expand]), merged]);
            }

            string kt = Node("Transpose", scope, [k], OnnxAttribute.Ints("perm", 0, 1, 3, 2));
            string raw = Node("Mul", scope, [Node("MatMul", scope, [q, kt]), "const.scale"]);
            if (attn.Softcap > 0)
            {
                // Gemma 2: scores capped before the mask.
                raw = Softcap(scope, raw, attn.Softcap);
            }

            string scores = Node("Add", scope, [raw, bias]);
            string probs = Node("Softmax", scope, [scores], OnnxAttribute.Int("axis", -1));
            string context = Node("Transpose", scope, [Node("MatMul", scope, [probs, v])], OnnxAttribute.Ints("perm", 0, 2, 1, 3));
            string flat = $"{scope}.flat_shape";
            Graph.AddInitializer(flat, [3], [0L, 0L, (long)nh * hs]);
            return Linear(attn.OProj, Node("Reshape", scope, [context, flat]));
        }

        // h (B,T,C) -> q (B,T,NH·HS), k and v (B,T,NKV·HS).
        private (string Q, string K, string V) Project(string scope, string h, SelfAttention attn)
        {
            int nh = attn.Heads, nkv = attn.KvHeads, hs = attn.HeadDim;
            if (attn.QkvProj is { } qkv)
            {
                // Phi-3's fused qkv_proj: q, k and v columns in that order.
                string[] parts = SplitLast(scope, Linear(qkv, h), (long)nh * hs, (long)nkv * hs, (long)nkv * hs);
                return (parts[0], parts[1], parts[2]);
            }

            return (Linear(attn.QProj!, h), Linear(attn.KProj!, h), Linear(attn.VProj!, h));
        }

        // ONNX Runtime's fused attention (com.microsoft GroupQueryAttention): RoPE from the half-width tables, causal
        // and sliding-window masks, soft-capping and the GQA head sharing inside one operator, past and present in
        // one max-length buffer. Qwen3's per-head q/k norms come first, on (B,T,H,HS).
        private string FusedAttention(string scope, int index, string h, SelfAttention attn, string ropeTable, (string SeqLens, string Total) lengths)
        {
            int nh = attn.Heads, nkv = attn.KvHeads, hs = attn.HeadDim;
            var (q, k, v) = Project(scope, h, attn);
            if (attn.QNorm is { } qNorm)
            {
                string PerHead(string flat, int heads, RmsNormLayer norm, string name)
                {
                    string split = $"{scope}.heads_{heads}", merged = $"{scope}.flat_{heads}";
                    if (!Graph.Initializers.Any(i => i.Name == split))
                    {
                        Graph.AddInitializer(split, [4], [0L, 0L, heads, hs]);
                        Graph.AddInitializer(merged, [3], [0L, 0L, (long)heads * hs]);
                    }

                    return Node("Reshape", scope, [Norm(name, Node("Reshape", scope, [flat, split]), norm), merged]);
                }

                q = PerHead(q, nh, qNorm, $"{scope}.q_norm");
                k = PerHead(k, nkv, attn.KNorm!, $"{scope}.k_norm");
            }

            string output = Next(scope, "GroupQueryAttention");
            string presentKey = $"present.{index}.key", presentValue = $"present.{index}.value";
            var attributes = new List<OnnxAttribute>
            {
                OnnxAttribute.Int("num_heads", nh),
                OnnxAttribute.Int("kv_num_heads", nkv),
                OnnxAttribute.Float("scale", config.AttentionScale != 0 ? config.AttentionScale : 1f / MathF.Sqrt(hs)),
                OnnxAttribute.Int("do_rotary", 1),
                OnnxAttribute.Int("rotary_interleaved", 0),
            };
            if (attn.Softcap > 0)
            {
                attributes.Add(OnnxAttribute.Float("softcap", attn.Softcap));
            }

            if (attn.SlidingWindow > 0)
            {
                // The operator hides keys W or more positions back, as the model does (measured against our forward).
                attributes.Add(OnnxAttribute.Int("local_window_size", attn.SlidingWindow));
            }

            Graph.AddNode(
                "GroupQueryAttention",
                [q, k, v, $"past_key_values.{index}.key", $"past_key_values.{index}.value", lengths.SeqLens, lengths.Total, ropeTable + ".cos_half", ropeTable + ".sin_half"],
                [output, presentKey, presentValue],
                output + "/node",
                "com.microsoft",
                [.. attributes]);
            Graph.AddOutput(presentKey, OnnxElementType.Float, "batch", nkv, "present_sequence", hs);
            Graph.AddOutput(presentValue, OnnxElementType.Float, "batch", nkv, "present_sequence", hs);
            return Linear(attn.OProj, output);
        }

        // x (…, Σ sizes) -> one output per size along the last axis.
        private string[] SplitLast(string scope, string x, params long[] sizes)
        {
            string split = Next(scope, "split_sizes");
            Graph.AddInitializer(split, [sizes.Length], sizes);
            var outputs = sizes.Select(_ => Next(scope, "Split")).ToArray();
            Graph.AddNode("Split", [x, split], outputs, $"{outputs[0]}/node", "", OnnxAttribute.Int("axis", -1));
            return outputs;
        }

        private (string First, string Second) SplitLast(string scope, string x, long first, long second)
        {
            string[] parts = SplitLast(scope, x, [first, second]);
            return (parts[0], parts[1]);
        }

        // Rotate-half RoPE on (B,H,T,HS): x·cos + cat(−x2, x1)·sin.
        private string Rope(string scope, string x, string cos, string sin)
        {
            string x1 = Next(scope, "Split"), x2 = Next(scope, "Split");
            Graph.AddNode("Split", [x, "const.half_split"], [x1, x2], $"{x1}/node", "", OnnxAttribute.Int("axis", -1));
            string rotated = Node("Concat", scope, [Node("Neg", scope, [x2]), x1], OnnxAttribute.Int("axis", -1));
            return Node("Add", scope, [Node("Mul", scope, [x, cos]), Node("Mul", scope, [rotated, sin])]);
        }

        private void Weight(string name, Tensor weight, bool transpose)
        {
            var values = weight.ToFloatArray();
            long rows = weight.Dim(0), cols = weight.Dim(1);
            if (transpose)
            {
                var t = new float[values.Length];
                for (long r = 0; r < rows; r++)
                {
                    for (long col = 0; col < cols; col++)
                    {
                        t[(col * rows) + r] = values[(r * cols) + col];
                    }
                }

                (values, rows, cols) = (t, cols, rows);
            }

            if (!float16)
            {
                Graph.AddInitializer(name, [rows, cols], values);
                return;
            }

            Graph.AddInitializer(name + ".f16", [rows, cols], values.Select(static x => (Half)x).ToArray());
            Graph.AddNode("Cast", [name + ".f16"], [name], name + "/Cast", "", OnnxAttribute.Int("to", (long)OnnxElementType.Float));
        }

        private string Next(string scope, string op) => $"{scope}/{op}_{counter++}";

        private string Node(string op, string scope, string[] inputs, params OnnxAttribute[] attributes)
        {
            string output = Next(scope, op);
            Graph.AddNode(op, inputs, [output], output + "/node", "", attributes);
            return output;
        }
    }
}
