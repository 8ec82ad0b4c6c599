namespace Microsoft.ML.Lora.Lora;

/// <summary>Which biases train alongside the adapters (PEFT's <c>bias</c>).</summary>
public enum LoraBias
{
    /// <summary>No bias trains (default).</summary>
    None,

    /// <summary>Biases of the adapted Linear layers train.</summary>
    LoraOnly,

    /// <summary>Every bias of the model trains.</summary>
    All,
}

/// <summary>How A and B start. B starts at zero except for PiSSA, so the adapted model starts equal to the base.</summary>
public enum LoraInit
{
    /// <summary>A ~ N(0, (1/d_in)²), B = 0 (this library's default, ../shared/DESIGN.md §3).</summary>
    Default,

    /// <summary>A ~ U(−1/√d_in, 1/√d_in), B = 0: PEFT's default (<c>init_lora_weights=True</c>, Kaiming-uniform with a = √5).</summary>
    KaimingUniform,

    /// <summary>A ~ N(0, 1/r), B = 0: PEFT's <c>init_lora_weights="gaussian"</c>.</summary>
    Gaussian,

    /// <summary>
    /// PiSSA: B·A = the weight's top-r singular part divided by s (A = √Σ_r·V_rᵀ/√s, B = U_r·√Σ_r/√s),
    /// and the base weight keeps the residual W − s·B·A. Needs an F32 base weight.
    /// </summary>
    Pissa,
}

/// <summary>
/// LoRA hyper-parameters (PEFT's <c>LoraConfig</c>). Immutable; every value is checked when set.
/// Defaults follow the LoRA literature (../shared/DESIGN.md §5): all linear layers, α = 32, s = α/r.
/// </summary>
public sealed record LoraOptions
{
    /// <summary>Target meaning every Linear except the output head.</summary>
    public const string AllLinear = "all-linear";

    private readonly int rank = 8;
    private readonly double alpha = 32;
    private readonly double dropout;
    private readonly IReadOnlyList<string> targetModules = [AllLinear];
    private readonly IReadOnlyList<int>? layersToTransform;
    private readonly IReadOnlyDictionary<string, int> rankPattern = new Dictionary<string, int>();
    private readonly IReadOnlyDictionary<string, double> alphaPattern = new Dictionary<string, double>();

    /// <summary>The largest LoRA rank accepted (2^16): far above any used, small enough to bound A and B before they are made.</summary>
    public const int MaxRank = 1 << 16;

    /// <summary>Rank r of A (r, d_in) and B (d_out, r). Default 8; must be ≥ 1.</summary>
    public int Rank
    {
        get => rank;
        init => rank = value is >= 1 and <= MaxRank ? value : throw new ArgumentOutOfRangeException(nameof(Rank), value, $"LoRA rank must be 1 … {MaxRank}");
    }

    /// <summary>α of the scale s = α/r (or α/√r). Default 32, so early training does not depend on r; must be &gt; 0.</summary>
    public double Alpha
    {
        get => alpha;
        init => alpha = value > 0 && double.IsFinite(value) ? value : throw new ArgumentOutOfRangeException(nameof(Alpha), value, "LoRA alpha must be a finite number > 0");
    }

    /// <summary>Dropout probability on each adapter's input during training. Default 0; in [0, 1).</summary>
    public double Dropout
    {
        get => dropout;
        init => dropout = value >= 0 && value < 1 ? value : throw new ArgumentOutOfRangeException(nameof(Dropout), value, "LoRA dropout must be in [0, 1)");
    }

    /// <summary>
    /// Modules to adapt: <c>all-linear</c> (default: every Linear but <c>lm_head</c>), or names matched
    /// as PEFT does: a module matches when its path equals the name or ends with "." + name
    /// (<c>q_proj</c>, <c>self_attn.q_proj</c>, <c>lm_head</c>). A name that matches nothing is an error.
    /// </summary>
    public IReadOnlyList<string> TargetModules
    {
        get => targetModules;
        init => targetModules = value is { Count: > 0 } && value.All(static t => !string.IsNullOrWhiteSpace(t))
            ? value.ToArray()
            : throw new ArgumentException("TargetModules needs at least one non-empty module name (or \"all-linear\")", nameof(TargetModules));
    }

    /// <summary>Which biases train. Default none.</summary>
    public LoraBias Bias { get; init; } = LoraBias.None;

    /// <summary>rsLoRA: s = α/√r instead of α/r, which keeps updates stable at large ranks. Default false.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>Initialisation of A and B. Default <see cref="LoraInit.Default"/>.</summary>
    public LoraInit Init { get; init; } = LoraInit.Default;

    /// <summary>Only adapt layers with these indices (<c>model.layers.i</c>); null (default) adapts all.</summary>
    public IReadOnlyList<int>? LayersToTransform
    {
        get => layersToTransform;
        init => layersToTransform = value is null ? null
            : value.Count > 0 && value.All(static i => i >= 0) ? value.ToArray()
            : throw new ArgumentException("LayersToTransform must be null or a non-empty list of layer indices ≥ 0", nameof(LayersToTransform));
    }

    /// <summary>Modules trained fully and saved with the adapter (e.g. <c>lm_head</c>, a classification head); matched like targets.</summary>
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];

    /// <summary>Per-module rank overrides: key matched as PEFT does (the module path ends with the key, regex allowed).</summary>
    public IReadOnlyDictionary<string, int> RankPattern
    {
        get => rankPattern;
        init => rankPattern = value.All(static kv => kv.Value >= 1) ? new Dictionary<string, int>(value)
            : throw new ArgumentException($"RankPattern ranks must be ≥ 1; got {string.Join(", ", value.Where(static kv => kv.Value < 1).Select(static kv => $"{kv.Key}={kv.Value}"))}", nameof(RankPattern));
    }

    /// <summary>Per-module α overrides, matched like <see cref="RankPattern"/>.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern
    {
        get => alphaPattern;
        init => alphaPattern = value.All(static kv => kv.Value > 0 && double.IsFinite(kv.Value)) ? new Dictionary<string, double>(value)
            : throw new ArgumentException("AlphaPattern values must be finite and > 0", nameof(AlphaPattern));
    }

    /// <summary>Scale s for a module with rank <paramref name="r"/> and α <paramref name="a"/>: α/r, or α/√r with rsLoRA.</summary>
    public float ScaleFor(int r, double a) => (float)(UseRsLora ? a / Math.Sqrt(r) : a / r);
}
