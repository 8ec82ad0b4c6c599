using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// LoRA on a causal LM, PEFT's way: named adapters, one active at a time (its parameters are the
/// trainable ones), a scope that disables adapters, and merge / unmerge / merge-and-unload.
/// </summary>
public static class LoraModelExtensions
{
    /// <summary>PEFT's default adapter name.</summary>
    public const string DefaultAdapterName = "default";

    /// <summary>
    /// Attaches a new adapter to every Linear that <paramref name="options"/> targets, makes it the
    /// active (and only trainable) adapter, and applies <see cref="LoraOptions.Bias"/> and
    /// <see cref="LoraOptions.ModulesToSave"/>. On a classifier (config with NumLabels) the <c>score</c> head is
    /// added to ModulesToSave, as PEFT does for task_type SEQ_CLS: it trains fully and is saved with the adapter.
    /// Returns the adapters created, one per adapted Linear.
    /// </summary>
    public static IReadOnlyList<LoraAdapter> AddAdapter(this LlamaForCausalLM model, LoraOptions options, string adapterName = DefaultAdapterName, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterName);
        options = WithClassifierHead(model, options);
        var linears = model.Linears().ToList();
        if (linears.Any(l => l.Adapters.ContainsKey(adapterName)))
        {
            throw new ArgumentException($"an adapter named '{adapterName}' is already attached; remove it first or choose another name", nameof(adapterName));
        }

        var targets = LoraTargets.Resolve(linears, options);
        var toSave = ResolveModulesToSave(model, options);
        var created = new List<LoraAdapter>();
        var random = new Random(seed);
        try
        {
            foreach (var linear in targets)
            {
                var (r, alpha) = LoraTargets.RankAndAlpha(linear.Name, options);
                float scale = options.ScaleFor(r, alpha);
                var (a, b) = LoraInitializer.Create(linear, r, scale, options.Init, random);
                var adapter = new LoraAdapter(
                    linear.Name,
                    adapterName,
                    new Parameter($"{linear.Name}.lora_A.{adapterName}.weight", a),
                    new Parameter($"{linear.Name}.lora_B.{adapterName}.weight", b),
                    scale,
                    (float)options.Dropout,
                    model.LoraRuntime);
                linear.AddAdapter(adapter);
                created.Add(adapter);
            }
        }
        catch
        {
            foreach (var l in targets)
            {
                l.RemoveAdapter(adapterName);
            }

            throw;
        }

        model.SetActiveAdapter(adapterName);
        PeftAdapter.Remember(model, adapterName, options, created);
        foreach (var bias in BiasesToTrain(model, targets, options.Bias))
        {
            bias.Trainable = true;
        }

        foreach (var p in toSave)
        {
            p.Trainable = true;
        }

        return created;
    }

    /// <summary>Makes <paramref name="adapterName"/> active on every Linear that has it (none on the others); only its parameters train.</summary>
    public static void SetActiveAdapter(this LlamaForCausalLM model, string? adapterName)
    {
        var linears = model.Linears().ToList();
        if (adapterName is not null && !linears.Any(l => l.Adapters.ContainsKey(adapterName)))
        {
            var names = linears.SelectMany(static l => l.Adapters.Keys).Distinct().ToList();
            throw new ArgumentException($"no adapter named '{adapterName}'; attached: {(names.Count == 0 ? "none" : string.Join(", ", names))}", nameof(adapterName));
        }

        foreach (var linear in linears)
        {
            linear.SetActiveAdapter(adapterName is not null && linear.Adapters.ContainsKey(adapterName) ? adapterName : null);
            foreach (var adapter in linear.Adapters.Values)
            {
                bool active = adapter.AdapterName == adapterName;
                adapter.A.Trainable = active;
                adapter.B.Trainable = active;
            }
        }
    }

    /// <summary>Every adapter attached to the model (all names, or only <paramref name="adapterName"/>).</summary>
    public static IEnumerable<LoraAdapter> Adapters(this LlamaForCausalLM model, string? adapterName = null) =>
        model.Linears().SelectMany(l => l.Adapters.Values).Where(a => adapterName is null || a.AdapterName == adapterName);

    /// <summary>Runs the base model until the returned scope is disposed (PEFT's <c>disable_adapter()</c>).</summary>
    public static IDisposable DisableAdapters(this LlamaForCausalLM model)
    {
        var linears = model.Linears().Where(static l => !l.AdaptersDisabled).ToList();
        foreach (var l in linears)
        {
            l.AdaptersDisabled = true;
        }

        return new Scope(() =>
        {
            foreach (var l in linears)
            {
                l.AdaptersDisabled = false;
            }
        });
    }

    /// <summary>Merges the active adapter into every adapted weight (W ← W + s·B·A, checked finite per layer); all or nothing.</summary>
    public static void MergeAdapter(this LlamaForCausalLM model, DType? mergedDType = null)
    {
        var merged = new List<Linear>();
        try
        {
            foreach (var linear in model.Linears().Where(static l => l.ActiveAdapter is not null))
            {
                linear.Merge(mergedDType);
                merged.Add(linear);
            }
        }
        catch
        {
            foreach (var l in merged)
            {
                l.Unmerge();
            }

            throw;
        }
    }

    /// <summary>Restores every merged weight exactly.</summary>
    public static void UnmergeAdapter(this LlamaForCausalLM model)
    {
        foreach (var linear in model.Linears())
        {
            linear.Unmerge();
        }
    }

    /// <summary>Merges the active adapter for good and removes every adapter: a plain model again, ready to save or export.</summary>
    public static void MergeAndUnload(this LlamaForCausalLM model, DType? mergedDType = null)
    {
        model.MergeAdapter(mergedDType);
        foreach (var linear in model.Linears())
        {
            linear.MergeAndUnload(mergedDType);
        }
    }

    /// <summary><paramref name="options"/> with the classifier's <c>score</c> head in ModulesToSave (unchanged for a causal LM).</summary>
    internal static LoraOptions WithClassifierHead(LlamaForCausalLM model, LoraOptions options) =>
        model.Config.NumLabels is null || options.ModulesToSave.Any(static m => LoraTargets.NameMatches(SequenceClassification.HeadName, m))
            ? options
            : options with { ModulesToSave = [.. options.ModulesToSave, SequenceClassification.HeadName] };

    private static IEnumerable<Parameter> BiasesToTrain(LlamaForCausalLM model, List<Linear> targets, LoraBias bias) => bias switch
    {
        LoraBias.None => [],
        LoraBias.LoraOnly => targets.Where(static l => l.Bias is not null).Select(static l => l.Bias!),
        LoraBias.All => model.Linears().Where(static l => l.Bias is not null).Select(static l => l.Bias!),
        _ => throw new ArgumentOutOfRangeException(nameof(bias), bias, "unknown bias mode"),
    };

    private static List<Parameter> ResolveModulesToSave(LlamaForCausalLM model, LoraOptions options)
    {
        var result = new List<Parameter>();
        foreach (string name in options.ModulesToSave)
        {
            var hits = model.Linears().Where(l => LoraTargets.NameMatches(l.Name, name)).SelectMany(static l => new[] { l.Weight, l.Bias }).OfType<Parameter>()
                .Concat(model.Parameters().Where(p => LoraTargets.NameMatches(p.Name, name + ".weight") || LoraTargets.NameMatches(p.Name, name + ".bias")))
                .Distinct().ToList();
            if (hits.Count == 0)
            {
                throw new ArgumentException($"modules_to_save '{name}' matches no module of this model; linear layers: {string.Join(", ", LoraTargets.Suffixes(model.Linears()))}");
            }

            foreach (var p in hits.Where(static p => p.Value.DType != DType.F32))
            {
                throw new ArgumentException($"modules_to_save '{name}': '{p.Name}' is {p.Value.DType}; modules trained fully need F32 weights (load with dtype f32)");
            }

            result.AddRange(hits);
        }

        return result;
    }

    private sealed class Scope(Action onDispose) : IDisposable
    {
        private Action? action = onDispose;

        public void Dispose()
        {
            action?.Invoke();
            action = null;
        }
    }
}
