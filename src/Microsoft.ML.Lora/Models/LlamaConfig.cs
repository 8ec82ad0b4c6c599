using System.Buffers;
using System.Text;
using System.Text.Json;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Models;

/// <summary>
/// The hyper-parameters of a Llama-family decoder, as in a Hugging Face <c>config.json</c>. Supported:
/// <c>model_type</c> llama (also SmolLM, TinyLlama), mistral, qwen2 and qwen3, with the CausalLM or the
/// ForSequenceClassification architecture (a <c>score</c> head of <see cref="NumLabels"/> outputs instead of <c>lm_head</c>).
/// <c>model_type</c> decides the layer layout, as in transformers: qwen2 has q/k/v bias and no o_proj bias,
/// llama's and qwen3's <c>attention_bias</c> adds bias to q, k, v and o_proj, llama's <c>mlp_bias</c> to the MLP,
/// mistral and phi3 have none; qwen3 normalizes each query and key head before RoPE (<see cref="QkNorm"/>);
/// phi3 stores q/k/v as one <c>qkv_proj</c> and gate/up as one <c>gate_up_proj</c> (<see cref="FusedProjections"/>);
/// gemma2 and gemma3_text are Gemma layers (<see cref="Gemma"/>).
/// Immutable and validated: build one with <see cref="Load"/>, <see cref="Parse"/>, <see cref="Create"/> or <see cref="With"/>.
/// Malformed files throw <see cref="InvalidDataException"/> naming the file and field; well-formed but
/// unsupported ones (architecture, rope_scaling type, activation) throw <see cref="NotSupportedException"/>.
/// </summary>
public sealed record LlamaConfig
{
    /// <summary>Supported <c>model_type</c> values and their CausalLM architecture.</summary>
    public static readonly IReadOnlyDictionary<string, string> Supported = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["llama"] = "LlamaForCausalLM",
        ["mistral"] = "MistralForCausalLM",
        ["qwen2"] = "Qwen2ForCausalLM",
        ["qwen3"] = "Qwen3ForCausalLM",
        ["phi3"] = "Phi3ForCausalLM",
        ["gemma2"] = "Gemma2ForCausalLM",
        ["gemma3_text"] = "Gemma3ForCausalLM",
    };

    /// <summary>Supported <c>model_type</c> values and their sequence-classification architecture.</summary>
    public static readonly IReadOnlyDictionary<string, string> SupportedSequenceClassification = new Dictionary<string, string>(StringComparer.Ordinal)
    {
        ["llama"] = "LlamaForSequenceClassification",
        ["mistral"] = "MistralForSequenceClassification",
        ["qwen2"] = "Qwen2ForSequenceClassification",
        ["qwen3"] = "Qwen3ForSequenceClassification",
        ["phi3"] = "Phi3ForSequenceClassification",
        ["gemma2"] = "Gemma2ForSequenceClassification",
        ["gemma3_text"] = "Gemma3TextForSequenceClassification",
    };

    /// <summary>The most classes a classifier may have (<c>num_labels</c>).</summary>
    public const int MaxLabels = 1 << 20;

    /// <summary>transformers' <c>num_labels</c> when a classification config gives neither it nor <c>id2label</c>.</summary>
    public const int DefaultNumLabels = 2;

    private readonly bool headDimExplicit;

    private LlamaConfig(
        string modelType,
        string architecture,
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int numKeyValueHeads,
        int? headDim,
        double rmsNormEps,
        double ropeTheta,
        RopeScaling? ropeScaling,
        int maxPositionEmbeddings,
        bool tieWordEmbeddings,
        bool attentionBias,
        bool mlpBias,
        int? slidingWindow,
        string? torchDtype)
    {
        ModelType = modelType;
        Architecture = architecture;
        VocabSize = vocabSize;
        HiddenSize = hiddenSize;
        IntermediateSize = intermediateSize;
        NumHiddenLayers = numHiddenLayers;
        NumAttentionHeads = numAttentionHeads;
        NumKeyValueHeads = numKeyValueHeads;
        int derived = numAttentionHeads > 0 ? hiddenSize / numAttentionHeads : 0;

        // head_dim equal to C / NH (with C divisible by NH) is the same model as no head_dim; only an
        // independent one must survive With() and takes part in equality.
        headDimExplicit = headDim.HasValue && (headDim != derived || numAttentionHeads <= 0 || hiddenSize % numAttentionHeads != 0);
        HeadDim = headDim ?? derived;
        RmsNormEps = rmsNormEps;
        RopeTheta = ropeTheta;
        RopeScaling = ropeScaling;
        MaxPositionEmbeddings = maxPositionEmbeddings;
        TieWordEmbeddings = tieWordEmbeddings;
        QkvBias = modelType == "qwen2" || (HasAttentionBiasOption(modelType) && attentionBias);
        OBias = HasAttentionBiasOption(modelType) && attentionBias;
        MlpBias = modelType == "llama" && mlpBias;
        SlidingWindow = slidingWindow;
        TorchDtype = torchDtype;
    }

    /// <summary><c>model_type</c>: llama, mistral, qwen2 or qwen3.</summary>
    public string ModelType { get; }

    /// <summary><c>architectures[0]</c>, e.g. LlamaForCausalLM or LlamaForSequenceClassification.</summary>
    public string Architecture { get; private init; }

    /// <summary>
    /// Number of classes of a sequence-classification model (<c>num_labels</c>, or the size of <c>id2label</c>):
    /// the width of its <c>score</c> head. Null for a causal LM.
    /// </summary>
    public int? NumLabels => Labels?.Names.Count;

    /// <summary>
    /// Class names by id (<c>id2label</c>; transformers' <c>LABEL_i</c> when the config has none); empty for a causal LM.
    /// </summary>
    public IReadOnlyList<string> Id2Label => Labels?.Names ?? [];

    /// <summary><c>pad_token_id</c>, or null; kept and written back, informational (rows carry their own lengths).</summary>
    public int? PadTokenId { get; private init; }

    /// <summary>Width of the output head: <see cref="NumLabels"/> for a classifier, else <see cref="VocabSize"/>.</summary>
    public int OutputSize => NumLabels ?? VocabSize;

    private LabelNames? Labels { get; init; }

    /// <summary><c>vocab_size</c> V.</summary>
    public int VocabSize { get; }

    /// <summary><c>hidden_size</c> C.</summary>
    public int HiddenSize { get; }

    /// <summary><c>intermediate_size</c> of the SwiGLU MLP.</summary>
    public int IntermediateSize { get; }

    /// <summary><c>num_hidden_layers</c>.</summary>
    public int NumHiddenLayers { get; }

    /// <summary><c>num_attention_heads</c> NH.</summary>
    public int NumAttentionHeads { get; }

    /// <summary><c>num_key_value_heads</c> (grouped-query attention); defaults to NH.</summary>
    public int NumKeyValueHeads { get; }

    /// <summary>Head size HS: <c>head_dim</c> when given, else C / NH.</summary>
    public int HeadDim { get; }

    /// <summary><c>rms_norm_eps</c>; default 1e-6 (transformers' LlamaConfig default).</summary>
    public double RmsNormEps { get; }

    /// <summary><c>rope_theta</c>; default 10000.</summary>
    public double RopeTheta { get; }

    /// <summary><c>rope_scaling</c> (linear or llama3); null for none or "default".</summary>
    public RopeScaling? RopeScaling { get; }

    /// <summary><c>max_position_embeddings</c>.</summary>
    public int MaxPositionEmbeddings { get; }

    /// <summary><c>tie_word_embeddings</c>: lm_head shares embed_tokens; default false.</summary>
    public bool TieWordEmbeddings { get; }

    /// <summary>q_proj, k_proj and v_proj have a bias (qwen2 always; llama and qwen3 when <c>attention_bias</c>).</summary>
    public bool QkvBias { get; }

    /// <summary>o_proj has a bias (llama and qwen3 when <c>attention_bias</c>).</summary>
    public bool OBias { get; }

    /// <summary>
    /// Queries and keys pass a per-head RMSNorm (<c>self_attn.q_norm</c>, <c>self_attn.k_norm</c>, weights of
    /// <see cref="HeadDim"/>, eps <see cref="RmsNormEps"/>) after their projection and before RoPE (qwen3).
    /// </summary>
    public bool QkNorm => ModelType is "qwen3" or "gemma3_text";

    /// <summary>
    /// Attention has one <c>self_attn.qkv_proj</c> ((NH + 2·NKV)·HS, C; q, k, v rows in that order) and the MLP one
    /// <c>mlp.gate_up_proj</c> (2·I, C; gate rows first), as Phi-3 checkpoints store them (phi3).
    /// </summary>
    public bool FusedProjections => ModelType == "phi3";

    /// <summary>gate_proj, up_proj and down_proj have a bias (llama's <c>mlp_bias</c>).</summary>
    public bool MlpBias { get; }

    /// <summary>
    /// <c>hidden_act</c>: "silu" (SwiGLU), or for Gemma "gelu_pytorch_tanh" (GeGLU, from <c>hidden_activation</c>);
    /// anything else is rejected.
    /// </summary>
    public string HiddenAct => Gemma ? "gelu_pytorch_tanh" : "silu";

    /// <summary>
    /// A Gemma layer (gemma2, gemma3_text): RMSNorms scale by (1 + weight) (<see cref="NormWeightOffset"/>), four
    /// norms per layer (each block's output is normalized too), embeddings multiplied by √hidden
    /// (<see cref="EmbeddingScale"/>), GeGLU, scores scaled by <see cref="QueryPreAttnScalar"/>^−½, tied embeddings
    /// by default; gemma2 soft-caps attention and final logits, gemma3_text normalizes q and k per head and gives
    /// its sliding layers their own RoPE base (<see cref="RopeLocalBaseFreq"/>).
    /// </summary>
    public bool Gemma => ModelType is "gemma2" or "gemma3_text";

    /// <summary>Added to every RMSNorm weight before it scales: 1 for Gemma's (1 + w), else 0.</summary>
    public float NormWeightOffset => Gemma ? 1f : 0f;

    /// <summary>Multiplies the embeddings: √hidden rounded to float32 for Gemma (as transformers casts it), else 1.</summary>
    public float EmbeddingScale => Gemma ? (float)Math.Sqrt(HiddenSize) : 1f;

    /// <summary><c>query_pre_attn_scalar</c> of Gemma (scores scale by its −½ power); null elsewhere (1/√head_dim).</summary>
    public double? QueryPreAttnScalar { get; private init; }

    /// <summary>The attention score scale the layers use: <see cref="QueryPreAttnScalar"/>^−½, or 0 for the default 1/√head_dim.</summary>
    public float AttentionScale => QueryPreAttnScalar is double q ? (float)Math.Pow(q, -0.5) : 0f;

    /// <summary><c>attn_logit_softcapping</c> (Gemma 2): scores → cap·tanh(scores/cap); null for none.</summary>
    public double? AttnLogitSoftcapping { get; private init; }

    /// <summary><c>final_logit_softcapping</c> (Gemma 2): logits → cap·tanh(logits/cap); null for none.</summary>
    public double? FinalLogitSoftcapping { get; private init; }

    /// <summary><c>rope_local_base_freq</c> (Gemma 3): the RoPE base of sliding layers, which also skip <see cref="RopeScaling"/>.</summary>
    public double? RopeLocalBaseFreq { get; private init; }

    /// <summary><c>sliding_window_pattern</c> (Gemma 3, default 6): every this-many-th layer is global, the others slide.</summary>
    public int SlidingWindowPattern { get; private init; }

    /// <summary>
    /// <c>sliding_window</c> of mistral and phi3 (or of qwen2 and qwen3 when <c>use_sliding_window</c>): the layers that
    /// slide (<see cref="SlidingWindowOfLayer"/>) let a token see only the last this-many tokens, itself included.
    /// Null: every layer attends to the whole causal prefix.
    /// </summary>
    public int? SlidingWindow { get; }

    /// <summary>
    /// <c>max_window_layers</c> of qwen2 and qwen3 with <c>use_sliding_window</c> (transformers' default 28): the
    /// layers before this index attend fully, the later ones slide. 0 for mistral and phi3 (every layer slides).
    /// </summary>
    public int MaxWindowLayers { get; private init; }

    /// <summary>The sliding window of layer <paramref name="layer"/>, or 0 when it attends to the whole prefix.</summary>
    public int SlidingWindowOfLayer(int layer) => SlidingWindow is int w && Slides(layer) ? w : 0;

    /// <summary>The RoPE base and scaling of layer <paramref name="layer"/>: Gemma 3's sliding layers use their own base, unscaled.</summary>
    public (double Theta, RopeScaling? Scaling) RopeOfLayer(int layer) =>
        RopeLocalBaseFreq is double local && SlidingWindow is not null && Slides(layer) ? (local, null) : (RopeTheta, RopeScaling);

    // transformers' layer_types: gemma2 slides on even layers, gemma3 on all but every pattern-th, qwen from max_window_layers.
    private bool Slides(int layer) => ModelType switch
    {
        "gemma2" => layer % 2 == 0,
        "gemma3_text" => (layer + 1) % SlidingWindowPattern != 0,
        _ => layer >= MaxWindowLayers,
    };

    /// <summary><c>torch_dtype</c> (or transformers v5 <c>dtype</c>) of the checkpoint, e.g. "bfloat16"; informational.</summary>
    public string? TorchDtype { get; }

    /// <summary>Reads and validates a <c>config.json</c>.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Malformed JSON, a missing or wrong-typed field, or inconsistent sizes.</exception>
    /// <exception cref="NotSupportedException">An architecture, rope_scaling type or activation this library does not implement.</exception>
    public static LlamaConfig Load(string configJsonPath)
    {
        string full = Path.GetFullPath(configJsonPath);
        using var doc = StrictJson.Parse(File.ReadAllBytes(full), full, "config");
        return FromJson(doc.RootElement, full);
    }

    /// <summary>Parses config.json text; <paramref name="sourceName"/> names it in error messages.</summary>
    public static LlamaConfig Parse(string json, string sourceName)
    {
        ArgumentNullException.ThrowIfNull(json);
        using var doc = StrictJson.Parse(json, sourceName, "config");
        return FromJson(doc.RootElement, sourceName);
    }

    /// <summary>
    /// Builds a config in code (e.g. a random model for a benchmark); parameters are the config.json fields
    /// in .NET casing with transformers' defaults. <c>attentionBias</c> is a llama and qwen3 option and <c>mlpBias</c>
    /// a llama one; both must be false for the others (qwen2's q/k/v bias is implied). Invalid values throw <see cref="ArgumentException"/>.
    /// </summary>
    public static LlamaConfig Create(
        int vocabSize,
        int hiddenSize,
        int intermediateSize,
        int numHiddenLayers,
        int numAttentionHeads,
        int? numKeyValueHeads = null,
        int? headDim = null,
        string modelType = "llama",
        double rmsNormEps = 1e-6,
        double ropeTheta = 10000,
        RopeScaling? ropeScaling = null,
        int maxPositionEmbeddings = 2048,
        bool tieWordEmbeddings = false,
        bool attentionBias = false,
        bool mlpBias = false,
        int? slidingWindow = null,
        string? torchDtype = null,
        int? numLabels = null,
        IReadOnlyList<string>? labelNames = null,
        int? padTokenId = null)
    {
        ArgumentNullException.ThrowIfNull(modelType);
        if (!Supported.TryGetValue(modelType, out string? architecture))
        {
            throw new ArgumentException($"model_type '{modelType}' is not supported; supported: {SupportedList}", nameof(modelType));
        }

        if ((attentionBias && !HasAttentionBiasOption(modelType)) || (mlpBias && modelType != "llama"))
        {
            throw new ArgumentException(
                attentionBias && !HasAttentionBiasOption(modelType)
                    ? $"attention_bias is a llama and qwen3 option; {modelType}'s biases are fixed by its architecture"
                    : $"mlp_bias is a llama option; {modelType}'s MLP has no bias",
                attentionBias && !HasAttentionBiasOption(modelType) ? nameof(attentionBias) : nameof(mlpBias));
        }

        var config = new LlamaConfig(
            modelType, architecture, vocabSize, hiddenSize, intermediateSize, numHiddenLayers, numAttentionHeads,
            numKeyValueHeads ?? numAttentionHeads, headDim, rmsNormEps, ropeTheta, ropeScaling, maxPositionEmbeddings,
            tieWordEmbeddings, attentionBias, mlpBias, slidingWindow, torchDtype) { PadTokenId = padTokenId };
        if (config.Gemma)
        {
            // transformers' defaults: the score scale of head_dim; Gemma 3's local RoPE base and pattern.
            bool gemma3 = modelType == "gemma3_text";
            config = config with { QueryPreAttnScalar = config.HeadDim, RopeLocalBaseFreq = gemma3 ? 10000 : null, SlidingWindowPattern = gemma3 ? 6 : 0 };
        }

        if (numLabels is not null || labelNames is not null)
        {
            config = config.ForSequenceClassification(numLabels ?? labelNames!.Count, labelNames);
        }

        if (config.Problem() is var (field, message))
        {
            throw new ArgumentException($"{field} {message}", ToParameterName(field));
        }

        return config;
    }

    /// <summary>
    /// This config as a sequence classifier with <paramref name="numLabels"/> classes (the model_type's
    /// ForSequenceClassification architecture; the body is unchanged). <paramref name="labelNames"/> are the
    /// class names by id (default <c>LABEL_0</c>…); they must be distinct.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="numLabels"/> is below 1, or the names are not <paramref name="numLabels"/> distinct strings.</exception>
    public LlamaConfig ForSequenceClassification(int numLabels, IReadOnlyList<string>? labelNames = null)
    {
        if (numLabels is < 1 or > MaxLabels)
        {
            throw new ArgumentOutOfRangeException(nameof(numLabels), numLabels, $"a classifier needs 1 to {MaxLabels} labels (num_labels)");
        }

        if (labelNames is not null && labelNames.Count != numLabels)
        {
            throw new ArgumentException($"{labelNames.Count} label names for num_labels {numLabels}; give one name per label", nameof(labelNames));
        }

        string[] names = labelNames?.ToArray() ?? Enumerable.Range(0, numLabels).Select(static i => $"LABEL_{i}").ToArray();
        if (LabelNames.Problem(names) is { } problem)
        {
            throw new ArgumentException($"id2label {problem}", nameof(labelNames));
        }

        return this with { Architecture = SupportedSequenceClassification[ModelType], Labels = new LabelNames(names) };
    }

    /// <summary>This config as a causal LM (the model_type's CausalLM architecture, no labels).</summary>
    public LlamaConfig ForCausalLM() => this with { Architecture = Supported[ModelType], Labels = null };

    /// <summary>
    /// A copy with some sizes changed (e.g. a real config shrunk to 2 layers); validated like <see cref="Create"/>.
    /// HeadDim follows the new C / NH unless this config or <paramref name="headDim"/> sets it explicitly.
    /// </summary>
    public LlamaConfig With(
        int? vocabSize = null,
        int? hiddenSize = null,
        int? intermediateSize = null,
        int? numHiddenLayers = null,
        int? numAttentionHeads = null,
        int? numKeyValueHeads = null,
        int? headDim = null,
        int? maxPositionEmbeddings = null,
        bool? tieWordEmbeddings = null) =>
        Create(
            vocabSize ?? VocabSize,
            hiddenSize ?? HiddenSize,
            intermediateSize ?? IntermediateSize,
            numHiddenLayers ?? NumHiddenLayers,
            numAttentionHeads ?? NumAttentionHeads,
            numKeyValueHeads ?? (numAttentionHeads.HasValue ? null : NumKeyValueHeads),
            headDim ?? (headDimExplicit ? HeadDim : null),
            ModelType,
            RmsNormEps,
            RopeTheta,
            RopeScaling,
            maxPositionEmbeddings ?? MaxPositionEmbeddings,
            tieWordEmbeddings ?? TieWordEmbeddings,
            attentionBias: HasAttentionBiasOption(ModelType) && OBias,
            mlpBias: MlpBias,
            SlidingWindow,
            TorchDtype,
            NumLabels,
            Labels?.Names,
            PadTokenId) with
        {
            MaxWindowLayers = MaxWindowLayers,
            QueryPreAttnScalar = QueryPreAttnScalar,
            AttnLogitSoftcapping = AttnLogitSoftcapping,
            FinalLogitSoftcapping = FinalLogitSoftcapping,
            RopeLocalBaseFreq = RopeLocalBaseFreq,
            SlidingWindowPattern = SlidingWindowPattern,
        };

    /// <summary>A Hugging Face compatible config.json (keys sorted, as transformers writes them).</summary>
    public string ToJson()
    {
        var buffer = new ArrayBufferWriter<byte>();
        using (var json = new Utf8JsonWriter(buffer, new JsonWriterOptions { Indented = true }))
        {
            json.WriteStartObject();
            json.WriteStartArray("architectures");
            json.WriteStringValue(Architecture);
            json.WriteEndArray();
            if (HasAttentionBiasOption(ModelType))
            {
                json.WriteBoolean("attention_bias", OBias);
            }

            if (ModelType == "gemma2")
            {
                WriteOptional(json, "attn_logit_softcapping", AttnLogitSoftcapping);
                WriteOptional(json, "final_logit_softcapping", FinalLogitSoftcapping);
            }

            json.WriteNumber("head_dim", HeadDim);
            json.WriteString("hidden_act", HiddenAct);
            if (Gemma)
            {
                json.WriteString("hidden_activation", HiddenAct);
            }

            json.WriteNumber("hidden_size", HiddenSize);
            if (Labels is { } labels)
            {
                json.WriteStartObject("id2label");
                for (int i = 0; i < labels.Names.Count; i++)
                {
                    json.WriteString(i.ToString(System.Globalization.CultureInfo.InvariantCulture), labels.Names[i]);
                }

                json.WriteEndObject();
            }

            json.WriteNumber("intermediate_size", IntermediateSize);
            if (Labels is { } inverse)
            {
                json.WriteStartObject("label2id");
                foreach (var (name, id) in inverse.Names.Select(static (n, i) => (n, i)).OrderBy(static p => p.n, StringComparer.Ordinal))
                {
                    json.WriteNumber(name, id);
                }

                json.WriteEndObject();
            }

            json.WriteNumber("max_position_embeddings", MaxPositionEmbeddings);
            if (ModelType is "qwen2" or "qwen3" && SlidingWindow is not null)
            {
                json.WriteNumber("max_window_layers", MaxWindowLayers);
            }

            if (ModelType == "llama")
            {
                json.WriteBoolean("mlp_bias", MlpBias);
            }

            json.WriteString("model_type", ModelType);
            json.WriteNumber("num_attention_heads", NumAttentionHeads);
            json.WriteNumber("num_hidden_layers", NumHiddenLayers);
            json.WriteNumber("num_key_value_heads", NumKeyValueHeads);
            if (PadTokenId is int pad)
            {
                json.WriteNumber("pad_token_id", pad);
            }

            if (QueryPreAttnScalar is double scalar)
            {
                json.WriteNumber("query_pre_attn_scalar", scalar);
            }

            json.WriteNumber("rms_norm_eps", RmsNormEps);
            if (RopeLocalBaseFreq is double local)
            {
                json.WriteNumber("rope_local_base_freq", local);
            }

            WriteRopeScaling(json, RopeScaling);
            json.WriteNumber("rope_theta", RopeTheta);
            if (ModelType != "llama")
            {
                WriteOptional(json, "sliding_window", SlidingWindow);
            }

            if (ModelType == "gemma3_text")
            {
                json.WriteNumber("sliding_window_pattern", SlidingWindowPattern);
            }

            json.WriteBoolean("tie_word_embeddings", TieWordEmbeddings);
            if (TorchDtype != null)
            {
                json.WriteString("torch_dtype", TorchDtype);
            }

            if (ModelType is "qwen2" or "qwen3")
            {
                json.WriteBoolean("use_sliding_window", SlidingWindow.HasValue);
            }

            json.WriteNumber("vocab_size", VocabSize);
            json.WriteEndObject();
        }

        return Encoding.UTF8.GetString(buffer.WrittenSpan) + "\n";
    }

    // An explicit layer_types (transformers ≥ 4.53 writes it) must say what the model type implies.
    private static void CheckLayerTypes(ConfigReader json, JsonElement root, string source, LlamaConfig config)
    {
        if (!root.TryGetProperty("layer_types", out var types) || types.ValueKind == JsonValueKind.Null)
        {
            return;
        }

        string[] implied = Enumerable.Range(0, config.NumHiddenLayers)
            .Select(i => config.SlidingWindowOfLayer(i) > 0 ? "sliding_attention" : "full_attention").ToArray();
        string[] given = types.ValueKind == JsonValueKind.Array
            ? types.EnumerateArray().Select(static t => t.ValueKind == JsonValueKind.String ? t.GetString()! : t.GetRawText()).ToArray()
            : [];
        if (!given.SequenceEqual(implied))
        {
            throw new NotSupportedException($"{source}: 'layer_types' [{string.Join(", ", given)}] differs from what model_type {config.ModelType} with these settings implies [{string.Join(", ", implied)}]; other layer patterns are not supported");
        }
    }

    // attention_bias (bias on q, k, v and o_proj together) is a config option of these model types.
    private static bool HasAttentionBiasOption(string modelType) => modelType is "llama" or "qwen3";

    private static string SupportedList => string.Join(", ", Supported.Select(kv => $"{kv.Key} ({kv.Value})"));

    private static LlamaConfig FromJson(JsonElement root, string source)
    {
        var json = new ConfigReader(root, source);
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{source}: config is a JSON {root.ValueKind}; expected an object");
        }

        string modelType = json.RequiredString("model_type");
        string? declared = json.Architecture();
        if (modelType == "gemma3" || root.TryGetProperty("vision_config", out _))
        {
            throw new NotSupportedException($"{source}: model_type '{modelType}' with vision_config is Gemma 3's vision-language model; its vision tower is not supported — fine-tune the text model (model_type gemma3_text, Gemma3ForCausalLM: Gemma 3 1B, or the text_config of a larger one)");
        }

        if (!Supported.TryGetValue(modelType, out string? expectedArchitecture))
        {
            string named = declared is null ? string.Empty : $" (architectures: {declared})";
            throw new NotSupportedException($"{source}: model_type '{modelType}'{named} is not supported; supported: {SupportedList}");
        }

        string architecture = declared ?? expectedArchitecture;
        bool classifier = SupportedSequenceClassification.Values.Contains(architecture);
        if (!Supported.Values.Contains(architecture) && !classifier)
        {
            throw new NotSupportedException($"{source}: architecture '{architecture}' is not supported; supported: {string.Join(", ", Supported.Values.Concat(SupportedSequenceClassification.Values))}");
        }

        bool gemma = modelType is "gemma2" or "gemma3_text";
        string activationKey = gemma && json.OptionalString("hidden_activation") is not null ? "hidden_activation" : "hidden_act";
        string hiddenAct = json.OptionalString(activationKey) ?? (gemma ? "gelu_pytorch_tanh" : "silu");
        string expectedAct = gemma ? "gelu_pytorch_tanh" : "silu";
        if (hiddenAct != expectedAct)
        {
            throw new NotSupportedException($"{source}: {activationKey} '{hiddenAct}' is not supported; expected {expectedAct} ({(gemma ? "GeGLU" : "SwiGLU")})");
        }

        if (json.OptionalDouble("partial_rotary_factor") is double partial && partial != 1)
        {
            throw new NotSupportedException($"{source}: partial_rotary_factor {partial} is not supported; RoPE here rotates the whole head (1.0)");
        }

        int heads = json.RequiredInt("num_attention_heads");
        int? headDim = json.OptionalInt("head_dim");
        int? slidingWindow = modelType switch
        {
            "mistral" or "phi3" or "gemma2" or "gemma3_text" => json.OptionalInt("sliding_window"),
            "qwen2" or "qwen3" when json.OptionalBool("use_sliding_window") == true => json.OptionalInt("sliding_window"),
            _ => null,
        };

        int maxWindowLayers = modelType is "qwen2" or "qwen3" && slidingWindow is not null ? json.OptionalInt("max_window_layers") ?? 28 : 0;
        var ropeParameters = json.OptionalObject("rope_parameters");
        var config = new LlamaConfig(
            modelType,
            architecture,
            json.RequiredInt("vocab_size"),
            json.RequiredInt("hidden_size"),
            json.RequiredInt("intermediate_size"),
            json.RequiredInt("num_hidden_layers"),
            heads,
            json.OptionalInt("num_key_value_heads") ?? heads,
            headDim,
            json.OptionalDouble("rms_norm_eps") ?? 1e-6,
            json.OptionalDouble("rope_theta") ?? (ropeParameters?.OptionalDouble("rope_theta")) ?? 10000,
            ParseRopeScaling(json.OptionalObject("rope_scaling") ?? ropeParameters, source),
            json.RequiredInt("max_position_embeddings"),
            json.OptionalBool("tie_word_embeddings") ?? gemma,
            HasAttentionBiasOption(modelType) && (json.OptionalBool("attention_bias") ?? false),
            modelType == "llama" && (json.OptionalBool("mlp_bias") ?? false),
            slidingWindow,
            json.OptionalString("torch_dtype") ?? json.OptionalString("dtype"))
        {
            PadTokenId = json.OptionalInt("pad_token_id"),
            MaxWindowLayers = maxWindowLayers,
            QueryPreAttnScalar = gemma ? json.OptionalDouble("query_pre_attn_scalar") ?? headDim ?? 256 : null,
            AttnLogitSoftcapping = modelType == "gemma2" ? json.OptionalDouble("attn_logit_softcapping") : null,
            FinalLogitSoftcapping = modelType == "gemma2" ? json.OptionalDouble("final_logit_softcapping") : null,
            RopeLocalBaseFreq = modelType == "gemma3_text" ? json.OptionalDouble("rope_local_base_freq") ?? 10000 : null,
            SlidingWindowPattern = modelType == "gemma3_text" ? json.OptionalInt("sliding_window_pattern") ?? 6 : 0,
        };
        if (modelType == "gemma3_text" && (json.OptionalDouble("attn_logit_softcapping") is not null || json.OptionalDouble("final_logit_softcapping") is not null))
        {
            throw new NotSupportedException($"{source}: gemma3_text with attn_logit_softcapping or final_logit_softcapping is not supported (Gemma 3 has none)");
        }

        CheckLayerTypes(json, root, source, config);
        if (classifier)
        {
            // The head follows model_type (a MistralForSequenceClassification is a mistral body).
            string own = SupportedSequenceClassification[modelType];
            if (architecture != own)
            {
                throw new InvalidDataException($"{source}: architecture '{architecture}' does not match model_type '{modelType}' (expected '{own}')");
            }

            string? problem = json.OptionalString("problem_type");
            if (problem is not null and not "single_label_classification")
            {
                throw new NotSupportedException($"{source}: problem_type '{problem}' is not supported; only single_label_classification (softmax cross entropy over the classes) is");
            }

            config = config with { Labels = new LabelNames(ClassNames(json, root, source)) };
        }

        if (config.Problem() is var (field, message))
        {
            throw new InvalidDataException($"{source}: '{field}' {message}");
        }

        return config;
    }

    // id2label ({"0": name, …}, ids 0…K−1) and num_labels must agree; label2id, when present, must be their inverse.
    private static string[] ClassNames(ConfigReader json, JsonElement root, string source)
    {
        int? numLabels = json.OptionalInt("num_labels");
        if (numLabels is < 1 or > MaxLabels)
        {
            throw new InvalidDataException($"{source}: 'num_labels' is {numLabels}; expected a positive integer no larger than {MaxLabels}");
        }

        string[]? names = null;
        if (root.TryGetProperty("id2label", out var id2label) && id2label.ValueKind != JsonValueKind.Null)
        {
            if (id2label.ValueKind != JsonValueKind.Object)
            {
                throw new InvalidDataException($"{source}: 'id2label' is a JSON {id2label.ValueKind}; expected an object {{\"0\": \"name\", …}}");
            }

            var entries = id2label.EnumerateObject().ToList();
            names = new string[entries.Count];
            foreach (var e in entries)
            {
                if (!int.TryParse(e.Name, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int id) || id >= entries.Count || names[id] is not null)
                {
                    throw new InvalidDataException($"{source}: 'id2label' has key \"{e.Name}\"; expected the ids 0…{entries.Count - 1}, each once");
                }

                names[id] = e.Value.ValueKind == JsonValueKind.String ? e.Value.GetString()!
                    : throw new InvalidDataException($"{source}: 'id2label.{e.Name}' is {e.Value.GetRawText()}; expected a string");
            }

            if (names.Length == 0)
            {
                throw new InvalidDataException($"{source}: 'id2label' is empty; a classifier needs at least one label");
            }

            if (numLabels is int n && n != names.Length)
            {
                throw new InvalidDataException($"{source}: 'num_labels' is {n} but 'id2label' names {names.Length} labels; they must agree");
            }
        }

        names ??= Enumerable.Range(0, numLabels ?? DefaultNumLabels).Select(static i => $"LABEL_{i}").ToArray();
        if (LabelNames.Problem(names) is { } problem)
        {
            throw new InvalidDataException($"{source}: 'id2label' {problem}");
        }

        if (root.TryGetProperty("label2id", out var label2id) && label2id.ValueKind == JsonValueKind.Object)
        {
            foreach (var e in label2id.EnumerateObject())
            {
                int at = Array.IndexOf(names, e.Name);
                if (at < 0 || e.Value.ValueKind != JsonValueKind.Number || !e.Value.TryGetInt32(out int id) || id != at)
                {
                    throw new InvalidDataException($"{source}: 'label2id.{e.Name}' is {e.Value.GetRawText()}; id2label gives {(at < 0 ? "no such label" : $"id {at}")} — label2id must be the inverse of id2label");
                }
            }
        }

        return names;
    }

    private static RopeScaling? ParseRopeScaling(ConfigReader? rope, string source)
    {
        if (rope == null)
        {
            return null;
        }

        string type = rope.OptionalString("rope_type") ?? rope.OptionalString("type")
            ?? throw new InvalidDataException($"{source}: '{rope.Path}' has neither 'rope_type' nor 'type'");
        switch (type)
        {
            case "default":
                return null;
            case "linear":
                return new RopeScaling("linear", rope.RequiredPositive("factor"));
            case "llama3":
                double low = rope.RequiredPositive("low_freq_factor");
                double high = rope.RequiredPositive("high_freq_factor");
                if (high <= low)
                {
                    // The llama3 formula divides by high_freq_factor − low_freq_factor.
                    throw new InvalidDataException($"{source}: '{rope.Path}.high_freq_factor' is {high}; expected more than low_freq_factor {low}");
                }

                return new RopeScaling("llama3", rope.RequiredPositive("factor"), low, high, rope.RequiredInt("original_max_position_embeddings"));
            default:
                throw new NotSupportedException($"{source}: rope_scaling type '{type}' is not supported; supported: linear, llama3 (or default/none)");
        }
    }

    private static void WriteRopeScaling(Utf8JsonWriter json, RopeScaling? scaling)
    {
        if (scaling == null)
        {
            json.WriteNull("rope_scaling");
            return;
        }

        json.WriteStartObject("rope_scaling");
        json.WriteNumber("factor", scaling.Factor);
        if (scaling.Type == "llama3")
        {
            json.WriteNumber("high_freq_factor", scaling.HighFreqFactor);
            json.WriteNumber("low_freq_factor", scaling.LowFreqFactor);
            json.WriteNumber("original_max_position_embeddings", scaling.OriginalMaxPositionEmbeddings);
        }

        json.WriteString("rope_type", scaling.Type);
        json.WriteEndObject();
    }

    private static void WriteOptional(Utf8JsonWriter json, string key, double? value)
    {
        if (value.HasValue)
        {
            json.WriteNumber(key, value.Value);
        }
        else
        {
            json.WriteNull(key);
        }
    }

    private static void WriteOptional(Utf8JsonWriter json, string key, int? value)
    {
        if (value.HasValue)
        {
            json.WriteNumber(key, value.Value);
        }
        else
        {
            json.WriteNull(key);
        }
    }

    private static string ToParameterName(string field)
    {
        var sb = new StringBuilder();
        bool upper = false;
        foreach (char c in field)
        {
            if (c == '_')
            {
                upper = true;
            }
            else
            {
                sb.Append(upper ? char.ToUpperInvariant(c) : c);
                upper = false;
            }
        }

        return sb.ToString();
    }

    /// <summary>The first invalid field and what is wrong with it, or null.</summary>
    private (string Field, string Message)? Problem()
    {
        (string, int)[] positive =
        [
            ("vocab_size", VocabSize), ("hidden_size", HiddenSize), ("intermediate_size", IntermediateSize),
            ("num_hidden_layers", NumHiddenLayers), ("num_attention_heads", NumAttentionHeads),
            ("num_key_value_heads", NumKeyValueHeads), ("max_position_embeddings", MaxPositionEmbeddings),
        ];
        foreach (var (field, value) in positive)
        {
            if (value <= 0)
            {
                return (field, $"is {value}; expected a positive integer");
            }
        }

        // Sane maxima, checked before anything is allocated from them: well above every published model
        // (vocabularies ≤ 262,144, hidden ≤ 16,384, ≤ 126 layers, ≤ 128 heads, contexts ≤ 10M), far below sizes
        // whose tables or arrays could not be allocated.
        (string, long, long)[] bounded =
        [
            ("vocab_size", VocabSize, 1 << 24), ("hidden_size", HiddenSize, 1 << 17), ("intermediate_size", IntermediateSize, 1 << 20),
            ("num_hidden_layers", NumHiddenLayers, 1024), ("num_attention_heads", NumAttentionHeads, 1024),
            ("num_key_value_heads", NumKeyValueHeads, 1024), ("max_position_embeddings", MaxPositionEmbeddings, 1 << 26),
            ("head_dim", HeadDim, 1 << 14), ("num_labels", NumLabels ?? 1, MaxLabels),
        ];
        foreach (var (field, value, max) in bounded)
        {
            if (value > max)
            {
                return (field, $"is {value}; the largest supported is {max}");
            }
        }

        if ((long)VocabSize * HiddenSize > 1L << 34 || (long)IntermediateSize * HiddenSize > 1L << 34 || (long)NumAttentionHeads * HeadDim * HiddenSize > 1L << 34)
        {
            return ("hidden_size", $"{HiddenSize} with vocab_size {VocabSize}, intermediate_size {IntermediateSize} and {NumAttentionHeads} heads of {HeadDim} makes a matrix of more than 2^34 elements");
        }

        if (!headDimExplicit && HiddenSize % NumAttentionHeads != 0)
        {
            return ("hidden_size", $"{HiddenSize} is not divisible by num_attention_heads {NumAttentionHeads} (and head_dim is not given)");
        }

        if (HeadDim <= 0 || HeadDim % 2 != 0)
        {
            return ("head_dim", $"is {HeadDim}; expected a positive even number (rotary embeddings rotate pairs)");
        }

        if (NumAttentionHeads % NumKeyValueHeads != 0)
        {
            return ("num_key_value_heads", $"{NumKeyValueHeads} does not divide num_attention_heads {NumAttentionHeads}");
        }

        if (!(RmsNormEps > 0) || !double.IsFinite(RmsNormEps))
        {
            return ("rms_norm_eps", $"is {RmsNormEps}; expected a positive finite number");
        }

        if (!(RopeTheta > 0) || !double.IsFinite(RopeTheta))
        {
            return ("rope_theta", $"is {RopeTheta}; expected a positive finite number");
        }

        if (MaxWindowLayers < 0)
        {
            return ("max_window_layers", $"is {MaxWindowLayers}; expected a non-negative integer");
        }

        if (SlidingWindow is <= 0)
        {
            return ("sliding_window", $"is {SlidingWindow}; expected a positive integer or null");
        }

        if (RopeScaling is { } s && (s.Type is not ("linear" or "llama3") || !(s.Factor > 0) || !double.IsFinite(s.Factor)))
        {
            return ("rope_scaling", $"is {s}; expected type linear or llama3 with a positive finite factor");
        }

        if (RopeScaling is { Type: "llama3" } l && !(l.LowFreqFactor > 0 && l.HighFreqFactor > l.LowFreqFactor && l.OriginalMaxPositionEmbeddings > 0))
        {
            return ("rope_scaling", $"is {l}; llama3 needs 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings > 0");
        }

        return null;
    }

    /// <summary>Class names by id, compared by content so equal configs are equal records.</summary>
    private sealed class LabelNames(string[] names) : IEquatable<LabelNames>
    {
        public IReadOnlyList<string> Names { get; } = Array.AsReadOnly(names);

        /// <summary>Why <paramref name="names"/> cannot be id2label (a duplicate makes label2id ambiguous), or null.</summary>
        public static string? Problem(string[] names)
        {
            var seen = new Dictionary<string, int>(StringComparer.Ordinal);
            for (int i = 0; i < names.Length; i++)
            {
                if (names[i] is null)
                {
                    return $"has no name for id {i}";
                }

                if (!seen.TryAdd(names[i], i))
                {
                    return $"gives the name '{names[i]}' to ids {seen[names[i]]} and {i}; label names must be distinct (label2id is their inverse)";
                }
            }

            return null;
        }

        public bool Equals(LabelNames? other) => other is not null && Names.SequenceEqual(other.Names, StringComparer.Ordinal);

        public override bool Equals(object? obj) => Equals(obj as LabelNames);

        public override int GetHashCode() => Names.Count;
    }
}
