using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;

namespace Microsoft.ML.Lora.Lora;

/// <summary>Describes attached adapters as a PEFT config and writes the adapter folder as one unit.</summary>
internal static partial class PeftAdapterWriter
{
    public static void Save(LlamaForCausalLM model, string directory, string adapterName, string? baseModelNameOrPath, LoraOptions? options)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterName);
        var linears = model.Linears().ToList();
        var adapters = linears.Where(l => l.Adapters.ContainsKey(adapterName)).Select(l => l.Adapters[adapterName]).ToList();
        if (adapters.Count == 0)
        {
            var names = linears.SelectMany(static l => l.Adapters.Keys).Distinct().ToList();
            throw new ArgumentException($"no adapter named '{adapterName}' to save; attached: {(names.Count == 0 ? "none" : string.Join(", ", names))}", nameof(adapterName));
        }

        var config = Describe(model, linears, adapters, options, baseModelNameOrPath);
        var entries = Entries(model, linears, adapters, config);
        WriteFolder(Path.GetFullPath(directory), adapterName, config.ToJson(), entries);
    }

    /// <summary>
    /// The config for <paramref name="adapters"/>: target_modules is the list of short names actually
    /// adapted (what PEFT writes after expanding "all-linear"), with layers_to_transform when only some
    /// layers are adapted, or full module paths when neither describes the set. r, α and the patterns
    /// come from <paramref name="options"/> or, without options, from the adapters' ranks and scales.
    /// Checked at the end: the config re-resolved gives every adapter its own rank and scale exactly.
    /// </summary>
    internal static PeftAdapterConfig Describe(LlamaForCausalLM model, List<Linear> linears, List<LoraAdapter> adapters, LoraOptions? options, string? baseModelNameOrPath)
    {
        var adapted = adapters.Select(static a => a.ModuleName).ToHashSet(StringComparer.Ordinal);
        var (targets, layers) = DescribeTargets(linears, adapted);
        PeftAdapterConfig config;
        if (options is not null)
        {
            options = LoraModelExtensions.WithClassifierHead(model, options);
            config = new PeftAdapterConfig
            {
                Rank = options.Rank,
                Alpha = options.Alpha,
                Dropout = options.Dropout,
                Bias = options.Bias,
                UseRsLora = options.UseRsLora,
                Init = options.Init,
                RankPattern = options.RankPattern,
                AlphaPattern = options.AlphaPattern,
                ModulesToSave = options.ModulesToSave,
            };
        }
        else
        {
            // Without options the scale is written as α = s·r with use_rslora false: the same s in PEFT.
            var alphas = adapters.ToDictionary(static a => a.ModuleName, static a => RecoverAlpha(a.Scale, a.Rank), StringComparer.Ordinal);
            int rank = (int)Mode(adapters.Select(static a => (double)a.Rank));
            double alpha = Mode(alphas.Values);
            config = new PeftAdapterConfig
            {
                Rank = rank,
                Alpha = alpha,
                Dropout = Shortest((float)Mode(adapters.Select(static a => (double)a.Dropout))),
                Bias = InferBias(linears, adapted),
                RankPattern = Overrides(adapters, static a => a.Rank, rank).ToDictionary(static kv => kv.Key, static kv => (int)kv.Value),
                AlphaPattern = Overrides(adapters, a => alphas[a.ModuleName], alpha),
                ModulesToSave = InferModulesToSave(model, linears, adapters),
            };
        }

        config = config with { TargetModules = targets, LayersToTransform = layers, BaseModelNameOrPath = baseModelNameOrPath };
        if (model.Config.NumLabels is not null)
        {
            // PEFT's SEQ_CLS: the head is saved whole beside the adapter, whether or not it is trainable now.
            config = config with
            {
                TaskType = PeftAdapterConfig.SequenceClassificationTask,
                ModulesToSave = config.ModulesToSave.Any(static m => LoraTargets.NameMatches(SequenceClassification.HeadName, m)) ? config.ModulesToSave : [.. config.ModulesToSave, SequenceClassification.HeadName],
            };
        }

        foreach (var a in adapters)
        {
            var resolved = config.ToOptions([a.ModuleName]);
            var (r, alpha) = LoraTargets.RankAndAlpha(a.ModuleName, resolved);
            float scale = resolved.ScaleFor(r, alpha);
            if (r != a.Rank || scale != a.Scale)
            {
                throw new ArgumentException(
                    $"the options do not describe adapter '{a.AdapterName}' on '{a.ModuleName}': they give r = {r}, s = {scale.ToString("R", CultureInfo.InvariantCulture)}; the adapter has r = {a.Rank}, s = {a.Scale.ToString("R", CultureInfo.InvariantCulture)} — pass the options it was created with, or none to describe the adapters as they are",
                    nameof(options));
            }
        }

        var wrong = linears.FirstOrDefault(l => config.Targets(l.Name) != adapted.Contains(l.Name));
        if (wrong is not null)
        {
            throw new InvalidOperationException($"internal: target_modules [{string.Join(", ", targets)}] would {(adapted.Contains(wrong.Name) ? "miss" : "also select")} '{wrong.Name}'");
        }

        return config;
    }

    private static (IReadOnlyList<string> Targets, IReadOnlyList<int>? Layers) DescribeTargets(List<Linear> linears, HashSet<string> adapted)
    {
        var shorts = adapted.Select(ShortName).Distinct().Order(StringComparer.Ordinal).ToList();
        var byShort = linears.Where(l => shorts.Contains(ShortName(l.Name))).ToList();
        if (byShort.Count == adapted.Count)
        {
            return (shorts, null);
        }

        var layers = adapted.Select(LayerOf).ToList();
        if (layers.All(static i => i is not null))
        {
            var set = layers.Select(static i => i!.Value).Distinct().Order().ToList();
            if (byShort.Count(l => LayerOf(l.Name) is { } i && set.Contains(i)) == adapted.Count)
            {
                return (shorts, set);
            }
        }

        return (adapted.Order(StringComparer.Ordinal).ToList(), null);
    }

    private static List<SafeTensorEntry> Entries(LlamaForCausalLM model, List<Linear> linears, List<LoraAdapter> adapters, PeftAdapterConfig config)
    {
        var entries = new List<SafeTensorEntry>();
        foreach (var a in adapters)
        {
            entries.Add(SafeTensorEntry.FromTensor(PeftAdapterKeys.LoraA(a.ModuleName), a.A.Value));
            entries.Add(SafeTensorEntry.FromTensor(PeftAdapterKeys.LoraB(a.ModuleName), a.B.Value));
        }

        var adapted = adapters.Select(static a => a.ModuleName).ToHashSet(StringComparer.Ordinal);
        foreach (var l in linears.Where(static l => l.Bias is not null))
        {
            bool isAdapted = adapted.Contains(l.Name);
            if (config.Bias == LoraBias.All || (config.Bias == LoraBias.LoraOnly && isAdapted))
            {
                entries.Add(SafeTensorEntry.FromTensor(isAdapted ? PeftAdapterKeys.AdaptedBias(l.Name) : PeftAdapterKeys.PlainBias(l.Name), l.Bias!.Value));
            }
        }

        var written = entries.Select(static e => e.Name).ToHashSet(StringComparer.Ordinal);
        foreach (string name in config.ModulesToSave)
        {
            var hits = ModulesToSaveParameters(model, linears, adapted, name);
            foreach (var p in hits.Where(p => written.Add(PeftAdapterKeys.Whole(p.Name))))
            {
                entries.Add(SafeTensorEntry.FromTensor(PeftAdapterKeys.Whole(p.Name), p.Value));
            }
        }

        return entries;
    }

    /// <summary>Parameters that a modules_to_save entry covers (a Linear's weight and bias, or e.g. the embedding).</summary>
    internal static List<Parameter> ModulesToSaveParameters(LlamaForCausalLM model, List<Linear> linears, HashSet<string> adapted, string name)
    {
        var hitLinears = linears.Where(l => LoraTargets.NameMatches(l.Name, name)).ToList();
        if (hitLinears.Any(l => ReferenceEquals(l, model.LmHead)) && model.Config.TieWordEmbeddings)
        {
            throw new NotSupportedException($"modules_to_save '{name}': lm_head is tied to the embedding in this model; save 'model.embed_tokens' instead");
        }

        if (hitLinears.FirstOrDefault(l => adapted.Contains(l.Name)) is { } both)
        {
            throw new ArgumentException($"modules_to_save '{name}': '{both.Name}' is also LoRA-adapted; PEFT trains a module either fully or with LoRA, not both");
        }

        var hits = hitLinears.SelectMany(static l => new[] { l.Weight, l.Bias }).OfType<Parameter>()
            .Concat(model.Parameters().Where(p => LoraTargets.NameMatches(p.Name, name + ".weight") || LoraTargets.NameMatches(p.Name, name + ".bias")))
            .Distinct().ToList();
        return hits.Count > 0 ? hits
            : throw new ArgumentException($"modules_to_save '{name}' matches no module of this model; linear layers: {string.Join(", ", LoraTargets.Suffixes(linears))}");
    }

    private static void WriteFolder(string full, string adapterName, byte[] configJson, List<SafeTensorEntry> entries)
    {
        string? staging = null;
        var temps = new List<string>();
        try
        {
            if (File.Exists(full))
            {
                throw new IOException($"'{full}' is a file, not a folder");
            }

            if (!Directory.Exists(full))
            {
                // New folder: fill a hidden sibling, then one rename publishes both files at once.
                string parent = Path.GetDirectoryName(full) ?? throw new IOException($"'{full}' has no parent folder");
                Directory.CreateDirectory(parent);
                staging = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
                Directory.CreateDirectory(staging);
                SafeTensorsWriter.Write(Path.Combine(staging, PeftAdapter.WeightsFileName), entries);
                WriteFlushed(Path.Combine(staging, PeftAdapterConfig.FileName), configJson);
                Directory.Move(staging, full);
                staging = null;
                return;
            }

            // Existing folder (it may hold other files): write both under temporary names, then drop the
            // old config first, so that an interruption between the renames leaves a folder that fails to
            // load with "adapter_config.json not found" rather than a mismatched pair.
            string tag = Guid.NewGuid().ToString("N");
            string weightsTemp = Path.Combine(full, $".{PeftAdapter.WeightsFileName}.{tag}.tmp");
            string configTemp = Path.Combine(full, $".{PeftAdapterConfig.FileName}.{tag}.tmp");
            temps.Add(weightsTemp);
            temps.Add(configTemp);
            SafeTensorsWriter.Write(weightsTemp, entries);
            WriteFlushed(configTemp, configJson);
            File.Delete(Path.Combine(full, PeftAdapterConfig.FileName));
            File.Move(weightsTemp, Path.Combine(full, PeftAdapter.WeightsFileName), overwrite: true);
            File.Move(configTemp, Path.Combine(full, PeftAdapterConfig.FileName), overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            Cleanup(staging, temps);
            throw new IOException($"cannot save adapter '{adapterName}' to '{full}': {e.Message} — is the folder writable, and is no part of its path a file?", e);
        }
        catch
        {
            Cleanup(staging, temps);
            throw;
        }
    }

    private static void WriteFlushed(string path, byte[] bytes)
    {
        using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None);
        stream.Write(bytes);
        stream.Flush(flushToDisk: true);
    }

    private static void Cleanup(string? staging, List<string> temps)
    {
        try
        {
            if (staging is not null && Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            foreach (string t in temps.Where(File.Exists))
            {
                File.Delete(t);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The original failure matters more; leftovers are hidden and named *.tmp.
        }
    }

    /// <summary>The α with the fewest significant digits for which (float)(α / r) is exactly <paramref name="scale"/>.</summary>
    internal static double RecoverAlpha(float scale, int rank)
    {
        double raw = (double)scale * rank;
        for (int digits = 1; digits <= 17; digits++)
        {
            double alpha = double.Parse(raw.ToString("G" + digits.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
            if (alpha > 0 && (float)(alpha / rank) == scale)
            {
                return alpha;
            }
        }

        return raw;
    }

    private static double Mode(IEnumerable<double> values) =>
        values.GroupBy(static v => v).OrderByDescending(static g => g.Count()).ThenBy(static g => g.Key).First().Key;

    /// <summary>Overrides for adapters whose value differs from <paramref name="fallback"/>: by short name when all adapted modules of that name agree, else by module path.</summary>
    private static Dictionary<string, double> Overrides(List<LoraAdapter> adapters, Func<LoraAdapter, double> value, double fallback)
    {
        var result = new Dictionary<string, double>(StringComparer.Ordinal);
        foreach (var group in adapters.GroupBy(static a => ShortName(a.ModuleName), StringComparer.Ordinal).OrderBy(static g => g.Key, StringComparer.Ordinal))
        {
            var values = group.Select(value).Distinct().ToList();
            if (values.Count == 1)
            {
                if (values[0] != fallback)
                {
                    result[group.Key] = values[0];
                }

                continue;
            }

            foreach (var a in group.Where(a => value(a) != fallback).OrderBy(static a => a.ModuleName, StringComparer.Ordinal))
            {
                result[a.ModuleName] = value(a);
            }
        }

        return result;
    }

    private static LoraBias InferBias(List<Linear> linears, HashSet<string> adapted)
    {
        var trained = linears.Where(static l => l.Bias is { Trainable: true }).ToList();
        return trained.Any(l => !adapted.Contains(l.Name)) ? LoraBias.All : trained.Count > 0 ? LoraBias.LoraOnly : LoraBias.None;
    }

    private static List<string> InferModulesToSave(LlamaForCausalLM model, List<Linear> linears, List<LoraAdapter> adapters)
    {
        var adapterParams = linears.SelectMany(static l => l.Adapters.Values).SelectMany(static a => a.Parameters()).ToHashSet();
        var biases = linears.Select(static l => l.Bias).OfType<Parameter>().ToHashSet();
        return model.Parameters()
            .Where(p => p.Trainable && !adapterParams.Contains(p) && !biases.Contains(p))
            .Select(static p => p.Name.EndsWith(".weight", StringComparison.Ordinal) ? p.Name[..^".weight".Length] : p.Name)
            .Distinct()
            .ToList();
    }

    private static string ShortName(string path) => path[(path.LastIndexOf('.') + 1)..];

    private static int? LayerOf(string path) =>
        LayerIndex().Match(path) is { Success: true } m ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;

    // 0.05f is written as 0.05, not 0.05000000074505806.
    private static double Shortest(float value) => double.Parse(value.ToString("R", CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    [GeneratedRegex(@"(?:^|\.)layers\.(\d+)\.", RegexOptions.CultureInvariant)]
    private static partial Regex LayerIndex();
}
