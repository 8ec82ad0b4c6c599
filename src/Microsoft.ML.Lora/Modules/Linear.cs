using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// y = x·Wᵀ + b with W (OC,C) as Hugging Face stores it. Stateless over activations: the caller keeps
/// the input alive and hands it back to <see cref="Backward"/>.
/// </summary>
public sealed class Linear : IDisposable
{
    /// <summary>Wraps existing parameters; shapes are checked. <paramref name="name"/> defaults to the weight's key without <c>.weight</c>.</summary>
    public Linear(Parameter weight, Parameter? bias, string? name = null)
    {
        if (weight.Value.Rank != 2)
        {
            throw new ArgumentException($"'{weight.Name}' must be 2-D (out, in); got {Tensor.Format(weight.Value.Shape)}");
        }

        if (bias is not null && (bias.Value.Rank != 1 || bias.Value.Dim(0) != weight.Value.Dim(0) || bias.Value.DType != DType.F32))
        {
            throw new ArgumentException($"'{bias.Name}' must be F32 ({weight.Value.Dim(0)}); got {bias.Value}");
        }

        Weight = weight;
        Bias = bias;
        Name = name ?? (weight.Name.EndsWith(".weight", StringComparison.Ordinal) ? weight.Name[..^".weight".Length] : weight.Name);
    }

    private readonly Dictionary<string, LoraAdapter> adapters = new(StringComparer.Ordinal);
    private Tensor? unmergedWeight;

    /// <summary>Module path (the weight's key without <c>.weight</c>), e.g. <c>model.layers.0.mlp.up_proj</c>.</summary>
    public string Name { get; }

    /// <summary>Attached adapters by name.</summary>
    public IReadOnlyDictionary<string, LoraAdapter> Adapters => adapters;

    /// <summary>The adapter applied in Forward/Backward, or null.</summary>
    public string? ActiveAdapter { get; private set; }

    /// <summary>When true the active adapter is skipped (the base model's output), e.g. for a reference pass.</summary>
    public bool AdaptersDisabled { get; set; }

    /// <summary>The adapter merged into <see cref="Weight"/>, or null.</summary>
    public string? MergedAdapter { get; private set; }

    /// <summary>The adapter Forward applies now: active, enabled and not merged.</summary>
    public LoraAdapter? Applied => ActiveAdapter is { } a && !AdaptersDisabled && MergedAdapter is null ? adapters[a] : null;

    /// <summary>Attaches an adapter (the first one becomes active).</summary>
    public void AddAdapter(LoraAdapter adapter)
    {
        if (adapter.A.Value.Dim(1) != InFeatures || adapter.B.Value.Dim(0) != OutFeatures)
        {
            throw new ArgumentException($"{Name}: adapter '{adapter.AdapterName}' is ({adapter.B.Value.Dim(0)}×{adapter.Rank})·({adapter.Rank}×{adapter.A.Value.Dim(1)}); the layer is {OutFeatures}×{InFeatures}");
        }

        if (!adapters.TryAdd(adapter.AdapterName, adapter))
        {
            throw new ArgumentException($"{Name}: an adapter named '{adapter.AdapterName}' is already attached");
        }

        // Adapters are made on the host; they live where the layer lives.
        adapter.A.MoveTo(Weight.Value.Backend);
        adapter.B.MoveTo(Weight.Value.Backend);

        ActiveAdapter ??= adapter.AdapterName;
    }

    /// <summary>Makes <paramref name="name"/> the active adapter (null: none).</summary>
    public void SetActiveAdapter(string? name)
    {
        if (name is not null && !adapters.ContainsKey(name))
        {
            throw new ArgumentException($"{Name}: no adapter named '{name}' (attached: {string.Join(", ", adapters.Keys)})");
        }

        ActiveAdapter = name;
    }

    /// <summary>Detaches and disposes an adapter; unmerges it first if merged.</summary>
    public void RemoveAdapter(string name)
    {
        if (MergedAdapter == name)
        {
            Unmerge();
        }

        if (adapters.Remove(name, out var adapter))
        {
            adapter.Dispose();
            if (ActiveAdapter == name)
            {
                ActiveAdapter = adapters.Keys.FirstOrDefault();
            }
        }
    }

    /// <summary>
    /// W ← W + s·B·A for the active adapter: computed into a new tensor, checked finite, then swapped in.
    /// The original weight is kept so <see cref="Unmerge"/> restores it bit for bit. An NF4 or BF16
    /// base is dequantized; the merged weight has <paramref name="mergedDType"/> (default: F32 for an
    /// F32 or NF4 base, BF16 for a BF16 base).
    /// </summary>
    public void Merge(DType? mergedDType = null)
    {
        if (MergedAdapter is not null)
        {
            throw new InvalidOperationException($"{Name}: adapter '{MergedAdapter}' is already merged; unmerge it first");
        }

        if (ActiveAdapter is null)
        {
            return;
        }

        using var merged = WeightPlus(adapters[ActiveAdapter]);
        RequireFinite(merged, $"merging adapter '{ActiveAdapter}'", "the base weight is unchanged");

        var target = mergedDType ?? (Weight.Value.DType == DType.BF16 ? DType.BF16 : DType.F32);
        var result = merged.To(target);
        unmergedWeight = Weight.Swap(result);
        MergedAdapter = ActiveAdapter;
    }

    /// <summary>
    /// A new F32 tensor W + s·B·A for the adapter Forward applies now (<see cref="Applied"/>; just W as F32 when none).
    /// The layer is unchanged.
    /// </summary>
    /// <exception cref="InvalidOperationException">The sum has a NaN or infinite element (named by row and column).</exception>
    public Tensor MergedWeightCopy()
    {
        var merged = WeightPlus(Applied);
        try
        {
            RequireFinite(merged, Applied is null ? "the weight" : $"adding adapter '{ActiveAdapter}'", "nothing was written");
            return merged;
        }
        catch
        {
            merged.Dispose();
            throw;
        }
    }

    private void RequireFinite(Tensor merged, string what, string consequence)
    {
        using var host = merged.IsHost ? null : merged.ToHost();
        int bad = IndexOfNonFinite((host ?? merged).AsF32());
        if (bad >= 0)
        {
            throw new InvalidOperationException($"{Name}: {what} gives a non-finite weight at row {bad / InFeatures}, column {bad % InFeatures}; {consequence}");
        }
    }

    private Tensor WeightPlus(LoraAdapter? adapter)
    {
        var w = Weight.Value.To(DType.F32);
        if (adapter is not null)
        {
            using var delta = adapter.Delta();
            w.Backend.Add(w, delta, w);
        }

        return w;
    }

    /// <summary>Restores the weight from before <see cref="Merge"/> exactly.</summary>
    public void Unmerge()
    {
        if (MergedAdapter is null || unmergedWeight is null)
        {
            return;
        }

        Weight.Swap(unmergedWeight).Dispose();
        unmergedWeight = null;
        MergedAdapter = null;
    }

    /// <summary>Keeps the merged weight for good: drops the original and every adapter (for export).</summary>
    public void MergeAndUnload(DType? mergedDType = null)
    {
        if (MergedAdapter is null)
        {
            Merge(mergedDType);
        }

        unmergedWeight?.Dispose();
        unmergedWeight = null;
        MergedAdapter = null;
        foreach (var a in adapters.Values)
        {
            a.Dispose();
        }

        adapters.Clear();
        ActiveAdapter = null;
    }

    /// <summary>Weight, bias and every adapter's parameters.</summary>
    public IEnumerable<Parameter> Parameters()
    {
        yield return Weight;
        if (Bias is not null)
        {
            yield return Bias;
        }

        foreach (var a in adapters.Values)
        {
            yield return a.A;
            yield return a.B;
        }
    }

    /// <summary>Moves the weight, bias, adapters and any unmerged weight to <paramref name="backend"/>.</summary>
    public void MoveTo(Backend backend)
    {
        foreach (var p in Parameters())
        {
            p.MoveTo(backend);
        }

        if (unmergedWeight is not null)
        {
            unmergedWeight = Parameter.Transfer(unmergedWeight, backend);
        }
    }

    /// <summary>Drops activations saved by adapters.</summary>
    public void ReleaseActivations()
    {
        foreach (var a in adapters.Values)
        {
            a.ReleaseActivations();
        }
    }

    private static int IndexOfNonFinite(Span<float> w)
    {
        for (int i = 0; i < w.Length; i++)
        {
            if (!float.IsFinite(w[i]))
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>W (OC,C).</summary>
    public Parameter Weight { get; }

    /// <summary>b (OC) or null.</summary>
    public Parameter? Bias { get; }

    /// <summary>C.</summary>
    public int InFeatures => Weight.Value.Dim(1);

    /// <summary>OC.</summary>
    public int OutFeatures => Weight.Value.Dim(0);

    /// <summary>x (N,C) -> y (N,OC).</summary>
    public void Forward(Tensor x, Tensor y)
    {
        int n = Rows(x, InFeatures, "input");
        Rows(y, OutFeatures, "output", n);
        var backend = x.Backend;
        backend.MatMul(x, false, Weight.Value, true, y, accumulate: false);
        if (Bias is not null)
        {
            backend.AddRowVector(y, Bias.Value);
        }

        Applied?.Forward(x, y);
    }

    /// <summary>
    /// dy (N,OC), x (N,C) -> dx (N,C), overwritten or, with <paramref name="accumulateDx"/>, added to;
    /// dW += dyᵀ·x and db += Σ dy only when those parameters are trainable. dx may be null.
    /// </summary>
    public void Backward(Tensor dy, Tensor x, Tensor? dx, bool accumulateDx = false)
    {
        int n = Rows(dy, OutFeatures, "output gradient");
        Rows(x, InFeatures, "input", n);
        var backend = dy.Backend;
        if (dx is not null)
        {
            Rows(dx, InFeatures, "input gradient", n);

            // dx (N,C) = dy (N,OC) · W (OC,C)
            backend.MatMul(dy, false, Weight.Value, false, dx, accumulateDx);
        }

        Applied?.Backward(dy, x, dx);

        if (Weight.Trainable)
        {
            // dW (OC,C) += dyᵀ (OC,N) · x (N,C)
            backend.MatMul(dy, true, x, false, Weight.Grad!, accumulate: true);
        }

        if (Bias is { Trainable: true })
        {
            backend.AccumulateRowSum(dy, Bias.Grad!);
        }
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
        unmergedWeight?.Dispose();
        foreach (var a in adapters.Values)
        {
            a.Dispose();
        }

        adapters.Clear();
    }

    private int Rows(Tensor t, int width, string what, int expectedRows = -1)
    {
        if (t.DType != DType.F32 || t.Rank != 2 || t.Dim(1) != width || (expectedRows >= 0 && t.Dim(0) != expectedRows))
        {
            string rows = expectedRows >= 0 ? expectedRows.ToString(System.Globalization.CultureInfo.InvariantCulture) : "N";
            throw new ArgumentException($"{Weight.Name}: {what} must be F32 ({rows}, {width}); got {t}");
        }

        return t.Dim(0);
    }
}
