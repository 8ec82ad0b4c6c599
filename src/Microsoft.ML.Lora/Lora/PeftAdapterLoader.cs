using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// Loads a PEFT adapter folder in two phases: read and check everything into new tensors (the model
/// untouched), then attach and swap in, undoing the attachments if that fails.
/// </summary>
internal static class PeftAdapterLoader
{
    public static (IReadOnlyList<LoraAdapter> Adapters, LoraOptions Options) Load(LlamaForCausalLM model, string directory, string adapterName, bool isTrainable)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterName);
        string dir = Path.GetFullPath(directory);
        if (!Directory.Exists(dir))
        {
            throw new DirectoryNotFoundException(File.Exists(dir)
                ? $"'{dir}' is a file; LoadAdapter takes the adapter folder (holding {PeftAdapterConfig.FileName} and {PeftAdapter.WeightsFileName})"
                : $"adapter folder '{dir}' not found");
        }

        var linears = model.Linears().ToList();
        if (linears.Any(l => l.Adapters.ContainsKey(adapterName)))
        {
            throw new ArgumentException($"an adapter named '{adapterName}' is already attached; remove it first or load under another name", nameof(adapterName));
        }

        string configPath = Path.Combine(dir, PeftAdapterConfig.FileName);
        string weightsPath = Path.Combine(dir, PeftAdapter.WeightsFileName);
        if (!File.Exists(configPath))
        {
            throw new FileNotFoundException($"'{dir}' is not a PEFT adapter folder: {PeftAdapterConfig.FileName} not found", configPath);
        }

        var config = PeftAdapterConfig.Read(configPath);
        if (config.TaskType == PeftAdapterConfig.SequenceClassificationTask)
        {
            // PEFT's SEQ_CLS models add both head names it knows ("classifier", "score") to modules_to_save; Llama-family
            // classifiers have only "score".
            config = config with { ModulesToSave = config.ModulesToSave.Where(static m => m != "classifier").ToList() };
        }
        if (!File.Exists(weightsPath))
        {
            string bin = Path.Combine(dir, "adapter_model.bin");
            if (File.Exists(bin))
            {
                throw new NotSupportedException($"{bin}: PyTorch pickle adapters are not read (unpickling runs code); convert to safetensors first, e.g. safetensors.torch.save_file(torch.load(\"adapter_model.bin\"), \"{PeftAdapter.WeightsFileName}\", metadata={{\"format\": \"pt\"}})");
            }

            throw new FileNotFoundException($"'{dir}' has {PeftAdapterConfig.FileName} but no {PeftAdapter.WeightsFileName}", weightsPath);
        }

        var pending = new List<Tensor>();
        try
        {
            using var file = SafeTensorsFile.Open(weightsPath);
            var plan = Plan(model, linears, config, file, pending);
            var adapters = Apply(model, linears, config, plan, adapterName, isTrainable);
            pending.Clear();
            return (adapters, config.ToOptions(plan.Modules.Select(static m => m.Linear.Name).ToList()));
        }
        finally
        {
            foreach (var t in pending)
            {
                t.Dispose();
            }
        }
    }

    private static LoadPlan Plan(LlamaForCausalLM model, List<Linear> linears, PeftAdapterConfig config, SafeTensorsFile file, List<Tensor> pending)
    {
        string path = file.Path;
        var byName = linears.ToDictionary(static l => l.Name, StringComparer.Ordinal);
        var keys = file.Tensors.Keys.Order(StringComparer.Ordinal).Select(k => PeftAdapterKeys.Parse(k, path)).ToList();
        var adaptedKeys = keys.Where(static k => k.Kind is PeftKeyKind.LoraA or PeftKeyKind.LoraB).Select(static k => k.Target).ToHashSet(StringComparer.Ordinal);

        // The bias of a Linear in modules_to_save is saved whole with it (<module>.bias), not as a trained LoRA bias.
        keys = keys.Select(k => k.Kind == PeftKeyKind.Bias && !adaptedKeys.Contains(k.Target) && config.ModulesToSave.Any(m => LoraTargets.NameMatches(k.Target, m))
            ? k with { Kind = PeftKeyKind.Whole, Target = k.Target + ".bias" }
            : k).ToList();
        var names = keys.Select(static k => k.AdapterName).OfType<string>().Distinct().ToList();
        if (names.Count > 1)
        {
            throw new InvalidDataException($"{path}: holds tensors of several adapters ({string.Join(", ", names)}); PEFT saves one adapter per folder");
        }

        string modelShape = $"this model has {model.Layers.Length} layers, hidden size {model.Config.HiddenSize}";
        CheckTask(model, config, file, path);
        var modules = new List<ModulePlan>();
        foreach (var group in keys.Where(static k => k.Kind is PeftKeyKind.LoraA or PeftKeyKind.LoraB).GroupBy(static k => k.Target, StringComparer.Ordinal))
        {
            var first = group.First();
            if (!byName.TryGetValue(group.Key, out var linear))
            {
                throw new InvalidDataException($"{path}: adapter key '{first.Key}' has no module in this model ({model.Layers.Length} layers; linear layers: {string.Join(", ", LoraTargets.Suffixes(linears))}) — was it trained on another base model?");
            }

            var a = group.Where(static k => k.Kind == PeftKeyKind.LoraA).ToList();
            var b = group.Where(static k => k.Kind == PeftKeyKind.LoraB).ToList();
            if (a.Count != 1 || b.Count != 1)
            {
                string have = string.Join(", ", group.Select(static k => $"'{k.Key}'"));
                throw new InvalidDataException(a.Count > 1 || b.Count > 1
                    ? $"{path}: module '{group.Key}' has several tensors for one matrix ({have}); keep one naming style"
                    : $"{path}: module '{group.Key}' has {(a.Count == 0 ? "lora_B but no lora_A" : "lora_A but no lora_B")} ({have}); every adapted module needs both — the file is incomplete");
            }

            var (rank, alpha) = LoraTargets.RankAndAlpha(linear.Name, config.ToOptions([linear.Name]));
            var aInfo = file.Info(a[0].Key);
            var bInfo = file.Info(b[0].Key);
            CheckShape(path, aInfo, [aInfo.Shape.Length == 2 ? aInfo.Shape[0] : rank, linear.InFeatures], linear, "lora_A is (r, in)", modelShape);
            CheckShape(path, bInfo, [linear.OutFeatures, bInfo.Shape.Length == 2 ? bInfo.Shape[1] : rank], linear, "lora_B is (out, r)", modelShape);
            if (aInfo.Shape[0] != rank || bInfo.Shape[1] != rank)
            {
                throw new InvalidDataException($"{path}: '{a[0].Key}' is {aInfo.ShapeText} and '{b[0].Key}' is {bInfo.ShapeText}, rank {aInfo.Shape[0]}/{bInfo.Shape[1]}; {PeftAdapterConfig.FileName} gives this module r = {rank} (r, rank_pattern) — config and weights disagree");
            }

            var at = ReadF32(file, aInfo, pending);
            var bt = ReadF32(file, bInfo, pending);
            float scale = config.ToOptions([linear.Name]).ScaleFor(rank, alpha);
            modules.Add(new ModulePlan(linear, at, bt, scale));
        }

        if (modules.Count == 0)
        {
            throw new InvalidDataException($"{path}: no lora_A / lora_B tensors ({file.Tensors.Count} tensors) — not a LoRA adapter file?");
        }

        CheckTargets(path, config, linears, modules);
        var adapted = modules.Select(static m => m.Linear.Name).ToHashSet(StringComparer.Ordinal);
        var swaps = new List<(Parameter Target, Tensor Value)>();
        foreach (var k in keys.Where(static k => k.Kind == PeftKeyKind.Bias))
        {
            if (!byName.TryGetValue(k.Target, out var linear) || linear.Bias is null)
            {
                throw new InvalidDataException($"{path}: bias key '{k.Key}' has no Linear with a bias in this model ({modelShape}) — was it trained on another base model?");
            }

            if (config.Bias == LoraBias.None || (config.Bias == LoraBias.LoraOnly && !adapted.Contains(linear.Name)))
            {
                throw new InvalidDataException($"{path}: bias key '{k.Key}' is present but {PeftAdapterConfig.FileName} has bias \"{(config.Bias == LoraBias.None ? "none" : "lora_only")}\"{(config.Bias == LoraBias.LoraOnly ? " and the module is not adapted" : string.Empty)}");
            }

            var info = file.Info(k.Key);
            CheckShape(path, info, [linear.OutFeatures], linear, "a bias is (out)", modelShape);
            swaps.Add((linear.Bias, ReadAs(file, info, DType.F32, pending)));
        }

        var parameters = model.Parameters().ToDictionary(static p => p.Name, StringComparer.Ordinal);
        var saved = new HashSet<string>(StringComparer.Ordinal);
        foreach (var k in keys.Where(static k => k.Kind == PeftKeyKind.Whole))
        {
            string module = k.Target.EndsWith(".weight", StringComparison.Ordinal) ? k.Target[..^".weight".Length]
                : k.Target.EndsWith(".bias", StringComparison.Ordinal) ? k.Target[..^".bias".Length] : k.Target;
            string? entry = config.ModulesToSave.FirstOrDefault(m => LoraTargets.NameMatches(module, m));
            if (entry is null)
            {
                throw new InvalidDataException($"{path}: tensor '{k.Key}' is neither LoRA nor a bias, and '{module}' is not in modules_to_save ({(config.ModulesToSave.Count == 0 ? "empty" : string.Join(", ", config.ModulesToSave))})");
            }

            if (!parameters.TryGetValue(k.Target, out var p) || (model.Config.TieWordEmbeddings && k.Target == "lm_head.weight"))
            {
                throw new InvalidDataException($"{path}: modules_to_save tensor '{k.Key}' has no parameter '{k.Target}' in this model ({modelShape}{(model.Config.TieWordEmbeddings ? "; lm_head is tied to the embedding" : string.Empty)}) — was it trained on another base model?");
            }

            if (adapted.Contains(module))
            {
                throw new InvalidDataException($"{path}: '{module}' is both LoRA-adapted and in modules_to_save; PEFT does one or the other");
            }

            var info = file.Info(k.Key);
            if (!info.Shape.AsSpan().SequenceEqual(p.Value.Shape))
            {
                throw new InvalidDataException($"{path}: tensor '{k.Key}' has shape {info.ShapeText}; this model's '{p.Name}' is {Tensor.Format(p.Value.Shape)} ({modelShape}) — was it trained on another base model?");
            }

            swaps.Add((p, ReadAs(file, info, p.Value.DType, pending)));
            saved.Add(entry);
        }

        var unsaved = config.ModulesToSave.Where(m => !saved.Contains(m)).ToList();
        if (unsaved.Count > 0)
        {
            throw new InvalidDataException($"{path}: modules_to_save lists {string.Join(", ", unsaved.Select(static m => $"'{m}'"))} but the file has no weight for it (expected e.g. '{PeftAdapterKeys.Whole(unsaved[0] + ".weight")}')");
        }

        return new LoadPlan(modules, swaps);
    }

    // A classifier's adapter carries its score head (PEFT's SEQ_CLS); it fits only a classifier with as many labels.
    private static void CheckTask(LlamaForCausalLM model, PeftAdapterConfig config, SafeTensorsFile file, string path)
    {
        string headKey = PeftAdapterKeys.Whole(SequenceClassification.HeadWeightName);
        int? adapterLabels = file.Tensors.ContainsKey(headKey) && file.Info(headKey).Shape is [int rows, _] ? rows : null;
        bool classifierAdapter = config.TaskType == PeftAdapterConfig.SequenceClassificationTask || adapterLabels is not null;
        string labels = adapterLabels is int n ? $"{n} labels" : "no score weight";
        if (model.Config.NumLabels is not int modelLabels)
        {
            if (classifierAdapter)
            {
                throw new InvalidDataException($"{path}: a sequence-classification adapter (task_type {config.TaskType ?? "absent"}, head '{SequenceClassification.HeadName}' with {labels}) cannot load into a causal LM ({model.Config.Architecture}); load the base with LlamaForCausalLM.LoadForSequenceClassification(dir, numLabels{(adapterLabels is int k ? $": {k}" : string.Empty)})");
            }

            return;
        }

        if (config.TaskType == PeftAdapterConfig.CausalLmTask)
        {
            throw new InvalidDataException($"{path}: a causal-LM adapter (task_type {PeftAdapterConfig.CausalLmTask}) cannot load into a sequence classifier ({model.Config.Architecture}, {modelLabels} labels); load the base with LlamaForCausalLM.Load, or use an adapter saved from a classifier (task_type {PeftAdapterConfig.SequenceClassificationTask})");
        }

        if (adapterLabels is null)
        {
            throw new InvalidDataException($"{path}: has no '{headKey}'; an adapter of a sequence classifier carries its trained head (modules_to_save [\"{SequenceClassification.HeadName}\"])");
        }

        if (adapterLabels != modelLabels || file.Info(headKey).Shape[1] != model.Config.HiddenSize)
        {
            throw new InvalidDataException($"{path}: '{headKey}' is {file.Info(headKey).ShapeText}, a head of {adapterLabels} labels; this model classifies into {modelLabels} labels with hidden size {model.Config.HiddenSize} — load the base with numLabels: {adapterLabels}");
        }
    }

    private static void CheckTargets(string path, PeftAdapterConfig config, List<Linear> linears, List<ModulePlan> modules)
    {
        if (config.TargetModules is null && config.TargetRegex is null)
        {
            return; // target_modules null: PEFT used its per-architecture default; the keys decide.
        }

        var present = modules.Select(static m => m.Linear.Name).ToHashSet(StringComparer.Ordinal);
        string targets = config.TargetRegex is not null ? $"the regex \"{config.TargetRegex}\"" : $"[{string.Join(", ", config.TargetModules!)}]";
        var extra = present.Where(n => !config.Targets(n)).Order(StringComparer.Ordinal).ToList();
        if (extra.Count > 0)
        {
            throw new InvalidDataException($"{path}: adapter weights for {string.Join(", ", extra.Take(3))}{(extra.Count > 3 ? $" and {extra.Count - 3} more" : string.Empty)}, which target_modules {targets} (layers_to_transform [{string.Join(", ", config.LayersToTransform ?? [])}]) does not select — config and weights disagree");
        }

        var missing = linears.Where(l => config.Targets(l.Name) && !present.Contains(l.Name)).Select(static l => l.Name).ToList();
        if (missing.Count > 0)
        {
            throw new InvalidDataException($"{path}: target_modules {targets} selects {string.Join(", ", missing.Take(3))}{(missing.Count > 3 ? $" and {missing.Count - 3} more" : string.Empty)} but the file has no lora_A / lora_B for it (expected '{PeftAdapterKeys.LoraA(missing[0])}') — incomplete file or another base model?");
        }
    }

    private static List<LoraAdapter> Apply(LlamaForCausalLM model, List<Linear> linears, PeftAdapterConfig config, LoadPlan plan, string adapterName, bool isTrainable)
    {
        var created = new List<LoraAdapter>();
        try
        {
            foreach (var m in plan.Modules)
            {
                var adapter = new LoraAdapter(
                    m.Linear.Name,
                    adapterName,
                    new Parameter($"{m.Linear.Name}.lora_A.{adapterName}.weight", m.A),
                    new Parameter($"{m.Linear.Name}.lora_B.{adapterName}.weight", m.B),
                    m.Scale,
                    (float)config.Dropout,
                    model.LoraRuntime);
                m.Linear.AddAdapter(adapter);
                created.Add(adapter);
            }

            model.SetActiveAdapter(adapterName);
        }
        catch
        {
            // RemoveAdapter disposes what was attached; Load disposes every tensor read (Dispose is idempotent).
            foreach (var l in linears.Where(l => l.Adapters.ContainsKey(adapterName)))
            {
                l.RemoveAdapter(adapterName);
            }

            throw;
        }

        // Nothing below can fail: shapes and dtypes were checked in Plan.
        foreach (var (target, value) in plan.Swaps)
        {
            target.Replace(value);
            target.Trainable = isTrainable;
        }

        foreach (var a in created)
        {
            a.A.Trainable = isTrainable;
            a.B.Trainable = isTrainable;
        }

        return created;
    }

    private static void CheckShape(string path, SafeTensorInfo info, int[] expected, Linear linear, string rule, string modelShape)
    {
        if (!info.Shape.AsSpan().SequenceEqual(expected))
        {
            throw new InvalidDataException($"{path}: tensor '{info.Name}' has shape {info.ShapeText}; expected {Tensor.Format(expected)} for '{linear.Name}' ({linear.OutFeatures}×{linear.InFeatures}; {rule}; {modelShape}) — was it trained on another base model?");
        }
    }

    private static Tensor ReadF32(SafeTensorsFile file, SafeTensorInfo info, List<Tensor> pending) => ReadAs(file, info, DType.F32, pending);

    private static Tensor ReadAs(SafeTensorsFile file, SafeTensorInfo info, DType dtype, List<Tensor> pending)
    {
        var t = file.Read(info.Name, dtype);
        pending.Add(t);
        return t;
    }

    private sealed record ModulePlan(Linear Linear, Tensor A, Tensor B, float Scale);

    private sealed record LoadPlan(List<ModulePlan> Modules, List<(Parameter Target, Tensor Value)> Swaps);
}
