using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Lora;

/// <summary>
/// PEFT's <c>adapter_config.json</c> for a LoRA adapter (PEFT's <c>LoraConfig</c> as <c>save_pretrained</c>
/// writes it). Reading validates every field this library uses and refuses variants it cannot
/// reproduce (DoRA, fan_in_fan_out, base-weight-rewriting inits, …) with <see cref="NotSupportedException"/>.
/// </summary>
public sealed record PeftAdapterConfig
{
    /// <summary>The file name PEFT uses.</summary>
    public const string FileName = "adapter_config.json";

    /// <summary>r: the default rank.</summary>
    public required int Rank { get; init; }

    /// <summary>lora_alpha: the default α.</summary>
    public required double Alpha { get; init; }

    /// <summary>lora_dropout.</summary>
    public double Dropout { get; init; }

    /// <summary>target_modules as a list (exact path or dotted suffix); null when it is a regex or absent.</summary>
    public IReadOnlyList<string>? TargetModules { get; init; }

    /// <summary>target_modules as a string: a regex the whole module path must match (PEFT's <c>re.fullmatch</c>).</summary>
    public string? TargetRegex { get; init; }

    /// <summary>exclude_modules as a list (exact path or dotted suffix), or null.</summary>
    public IReadOnlyList<string>? ExcludeModules { get; init; }

    /// <summary>exclude_modules as a regex string, or null.</summary>
    public string? ExcludeRegex { get; init; }

    /// <summary>bias.</summary>
    public LoraBias Bias { get; init; }

    /// <summary>use_rslora: s = α/√r.</summary>
    public bool UseRsLora { get; init; }

    /// <summary>init_lora_weights (informational once weights are loaded).</summary>
    public LoraInit Init { get; init; } = LoraInit.KaimingUniform;

    /// <summary>layers_to_transform (ignored by PEFT when target_modules is a regex).</summary>
    public IReadOnlyList<int>? LayersToTransform { get; init; }

    /// <summary>rank_pattern: per-module rank overrides, keys matched by <see cref="LoraTargets.PatternMatches"/>.</summary>
    public IReadOnlyDictionary<string, int> RankPattern { get; init; } = new Dictionary<string, int>();

    /// <summary>alpha_pattern: per-module α overrides.</summary>
    public IReadOnlyDictionary<string, double> AlphaPattern { get; init; } = new Dictionary<string, double>();

    /// <summary>modules_to_save: modules trained fully and saved whole.</summary>
    public IReadOnlyList<string> ModulesToSave { get; init; } = [];

    /// <summary>base_model_name_or_path, or null.</summary>
    public string? BaseModelNameOrPath { get; init; }

    /// <summary>PEFT's task_type of a causal-LM adapter.</summary>
    public const string CausalLmTask = "CAUSAL_LM";

    /// <summary>PEFT's task_type of a sequence-classification adapter (its head is in modules_to_save).</summary>
    public const string SequenceClassificationTask = "SEQ_CLS";

    /// <summary>task_type: <see cref="CausalLmTask"/> or <see cref="SequenceClassificationTask"/>; null when the file has none.</summary>
    public string? TaskType { get; init; } = CausalLmTask;

    /// <summary>Whether PEFT would adapt the module at <paramref name="path"/>: targeted (regex, or list with layers_to_transform) and not excluded.</summary>
    public bool Targets(string path)
    {
        bool hit = TargetRegex is not null
            ? Regex.IsMatch(path, $"^(?:{TargetRegex})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1))
            : TargetModules is not null && TargetModules.Any(t => t == LoraOptions.AllLinear ? LoraTargets.InAllLinear(path) : LoraTargets.NameMatches(path, t))
                && (LayersToTransform is null || (LayerIndex(path) is { } i && LayersToTransform.Contains(i)));
        bool excluded = (ExcludeRegex is not null && Regex.IsMatch(path, $"^(?:{ExcludeRegex})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1)))
            || (ExcludeModules is not null && ExcludeModules.Any(e => LoraTargets.NameMatches(path, e)));
        return hit && !excluded;
    }

    /// <summary>Options equivalent to this config for the adapted module paths <paramref name="modules"/>.</summary>
    public LoraOptions ToOptions(IReadOnlyList<string> modules) => new()
    {
        Rank = Rank,
        Alpha = Alpha,
        Dropout = Dropout,
        TargetModules = TargetModules is { Count: > 0 } && ExcludeModules is null && ExcludeRegex is null ? TargetModules : modules,
        Bias = Bias,
        UseRsLora = UseRsLora,
        Init = Init,
        LayersToTransform = TargetModules is { Count: > 0 } && ExcludeModules is null && ExcludeRegex is null ? LayersToTransform : null,
        ModulesToSave = ModulesToSave,
        RankPattern = RankPattern,
        AlphaPattern = AlphaPattern,
    };

    /// <summary>Reads and validates <paramref name="path"/>.</summary>
    /// <exception cref="FileNotFoundException">No such file.</exception>
    /// <exception cref="InvalidDataException">Bad JSON, a missing field or a wrong value; the message names the file and field.</exception>
    /// <exception cref="NotSupportedException">A PEFT feature this library does not implement.</exception>
    public static PeftAdapterConfig Read(string path)
    {
        string full = Path.GetFullPath(path);
        if (!File.Exists(full))
        {
            throw new FileNotFoundException($"{full} not found: a PEFT adapter folder holds {FileName} and adapter_model.safetensors", full);
        }

        using var doc = StrictJson.Parse(File.ReadAllBytes(full), full, "the adapter config");
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{full}: expected a JSON object; got {root.ValueKind}");
        }

        var c = new ConfigReader(root, full);
        string peftType = c.RequiredString("peft_type");
        if (peftType != "LORA")
        {
            throw new NotSupportedException($"{full}: peft_type '{peftType}' is not supported; only LoRA adapters (peft_type \"LORA\") load here");
        }

        string? task = c.OptionalString("task_type");
        if (task is not null and not (CausalLmTask or SequenceClassificationTask))
        {
            throw new NotSupportedException($"{full}: task_type '{task}' is not supported; expected \"{CausalLmTask}\" (a causal LM adapter) or \"{SequenceClassificationTask}\" (sequence classification)");
        }

        Refuse(c, full, "use_dora", "DoRA adapters (a magnitude vector per column) are not supported");
        Refuse(c, full, "fan_in_fan_out", "weights stored (in, out) as GPT-2's Conv1D are not supported; Llama-family Linears are (out, in)");
        Refuse(c, full, "lora_bias", "LoRA-B biases are not supported");
        Refuse(c, full, "use_qalora", "QA-LoRA is not supported");
        foreach (string key in new[] { "layer_replication", "trainable_token_indices", "target_parameters", "alora_invocation_tokens", "megatron_config" })
        {
            RefuseValue(root, full, key);
        }

        int rank = c.RequiredInt("r");
        if (rank is < 1 or > LoraOptions.MaxRank)
        {
            throw new InvalidDataException($"{full}: 'r' is {rank}; expected an integer 1 … {LoraOptions.MaxRank}");
        }

        double dropout = c.OptionalDouble("lora_dropout") ?? 0;
        if (!(dropout >= 0 && dropout < 1))
        {
            throw new InvalidDataException($"{full}: 'lora_dropout' is {dropout.ToString(CultureInfo.InvariantCulture)}; expected a number in [0, 1)");
        }

        var (targets, targetRegex) = ListOrRegex(root, full, "target_modules");
        var (exclude, excludeRegex) = ListOrRegex(root, full, "exclude_modules");
        string? layersPattern = LayersPattern(root, full);
        if (layersPattern is not null and not "layers")
        {
            throw new NotSupportedException($"{full}: layers_pattern '{layersPattern}' is not supported; Llama-family decoder layers are 'model.layers.N'");
        }

        return new PeftAdapterConfig
        {
            Rank = rank,
            Alpha = c.RequiredPositive("lora_alpha"),
            Dropout = dropout,
            TargetModules = targets,
            TargetRegex = targetRegex,
            ExcludeModules = exclude,
            ExcludeRegex = excludeRegex,
            Bias = c.OptionalString("bias") switch
            {
                null or "none" => LoraBias.None,
                "lora_only" => LoraBias.LoraOnly,
                "all" => LoraBias.All,
                string b => throw new InvalidDataException($"{full}: 'bias' is \"{b}\"; expected \"none\", \"lora_only\" or \"all\""),
            },
            UseRsLora = c.OptionalBool("use_rslora") ?? false,
            Init = InitOf(root, full),
            LayersToTransform = Layers(root, full),
            RankPattern = Pattern<int>(root, full, "rank_pattern", static v => v.TryGetInt32(out int r) && r is >= 1 and <= LoraOptions.MaxRank ? r : null, $"an integer 1 … {LoraOptions.MaxRank}"),
            AlphaPattern = Pattern<double>(root, full, "alpha_pattern", static v => v.TryGetDouble(out double a) && a > 0 && double.IsFinite(a) ? a : null, "a number > 0"),
            ModulesToSave = StringList(root, full, "modules_to_save") ?? [],
            BaseModelNameOrPath = c.OptionalString("base_model_name_or_path"),
            TaskType = task,
        };
    }

    /// <summary>
    /// Writes the JSON PEFT's <c>save_pretrained</c> writes: sorted keys, indent 2, no trailing newline;
    /// the field set of PEFT 0.10–0.13 (newer PEFT reads it; older PEFT refuses unknown fields).
    /// </summary>
    internal byte[] ToJson()
    {
        using var stream = new MemoryStream();
        using (var json = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping }))
        {
            json.WriteStartObject();
            json.WriteStartObject("alpha_pattern");
            foreach (var (key, value) in AlphaPattern)
            {
                json.WriteNumber(key, value);
            }

            json.WriteEndObject();
            json.WriteNull("auto_mapping");
            WriteNullable(json, "base_model_name_or_path", BaseModelNameOrPath);
            json.WriteString("bias", Bias switch { LoraBias.LoraOnly => "lora_only", LoraBias.All => "all", _ => "none" });
            json.WriteBoolean("fan_in_fan_out", false);
            json.WriteBoolean("inference_mode", true);
            switch (Init)
            {
                case LoraInit.Gaussian:
                    json.WriteString("init_lora_weights", "gaussian");
                    break;
                case LoraInit.Pissa:
                    json.WriteString("init_lora_weights", "pissa");
                    break;
                default:
                    json.WriteBoolean("init_lora_weights", true);
                    break;
            }

            json.WriteNull("layer_replication");
            json.WriteNull("layers_pattern");
            if (LayersToTransform is null)
            {
                json.WriteNull("layers_to_transform");
            }
            else
            {
                json.WriteStartArray("layers_to_transform");
                foreach (int i in LayersToTransform)
                {
                    json.WriteNumberValue(i);
                }

                json.WriteEndArray();
            }

            json.WriteStartObject("loftq_config");
            json.WriteEndObject();
            json.WriteNumber("lora_alpha", Alpha);
            json.WriteNumber("lora_dropout", Dropout);
            json.WriteNull("megatron_config");
            json.WriteString("megatron_core", "megatron.core");
            WriteList(json, "modules_to_save", ModulesToSave.Count == 0 ? null : ModulesToSave);
            json.WriteString("peft_type", "LORA");
            json.WriteNumber("r", Rank);
            json.WriteStartObject("rank_pattern");
            foreach (var (key, value) in RankPattern)
            {
                json.WriteNumber(key, value);
            }

            json.WriteEndObject();
            json.WriteNull("revision");
            if (TargetRegex is not null)
            {
                json.WriteString("target_modules", TargetRegex);
            }
            else
            {
                WriteList(json, "target_modules", TargetModules);
            }

            json.WriteString("task_type", TaskType ?? CausalLmTask);
            json.WriteBoolean("use_dora", false);
            json.WriteBoolean("use_rslora", UseRsLora);
            json.WriteEndObject();
        }

        return stream.ToArray();
    }

    private static int? LayerIndex(string path)
    {
        var m = Regex.Match(path, @"(?:^|\.)layers\.(\d+)\.", RegexOptions.CultureInvariant);
        return m.Success ? int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : null;
    }

    private static void Refuse(ConfigReader c, string file, string key, string why)
    {
        if (c.OptionalBool(key) == true)
        {
            throw new NotSupportedException($"{file}: '{key}' is true: {why}");
        }
    }

    private static void RefuseValue(JsonElement root, string file, string key)
    {
        if (root.TryGetProperty(key, out var v) && v.ValueKind != JsonValueKind.Null
            && !(v.ValueKind == JsonValueKind.Array && v.GetArrayLength() == 0)
            && !(v.ValueKind == JsonValueKind.Object && !v.EnumerateObject().Any()))
        {
            throw new NotSupportedException($"{file}: '{key}' is {Short(v)}; this PEFT feature is not supported (expected null)");
        }
    }

    private static (IReadOnlyList<string>? List, string? Regex) ListOrRegex(JsonElement root, string file, string key)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return (null, null);
        }

        if (v.ValueKind == JsonValueKind.String)
        {
            string pattern = v.GetString()!;
            try
            {
                _ = new Regex(pattern, RegexOptions.CultureInvariant);
            }
            catch (ArgumentException e)
            {
                throw new InvalidDataException($"{file}: '{key}' is the regex \"{pattern}\", which does not parse: {e.Message}", e);
            }

            return (null, pattern);
        }

        return (StringList(root, file, key), null);
    }

    private static IReadOnlyList<string>? StringList(JsonElement root, string file, string key)
    {
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind != JsonValueKind.Array || v.EnumerateArray().Any(static e => e.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(e.GetString())))
        {
            throw new InvalidDataException($"{file}: '{key}' is {Short(v)}; expected a list of module names (or null)");
        }

        return v.EnumerateArray().Select(static e => e.GetString()!).ToArray();
    }

    private static string? LayersPattern(JsonElement root, string file)
    {
        var list = root.TryGetProperty("layers_pattern", out var v) && v.ValueKind == JsonValueKind.String ? [v.GetString()!] : StringList(root, file, "layers_pattern");
        return list is null ? null : list.Count == 1 ? list[0] : string.Join(", ", list);
    }

    private static IReadOnlyList<int>? Layers(JsonElement root, string file)
    {
        if (!root.TryGetProperty("layers_to_transform", out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return null;
        }

        if (v.ValueKind == JsonValueKind.Number && v.TryGetInt32(out int single) && single >= 0)
        {
            return [single];
        }

        var values = v.ValueKind == JsonValueKind.Array
            ? v.EnumerateArray().Select(static e => e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int i) && i >= 0 ? i : -1).ToArray()
            : [];
        if (values.Length == 0 || values.Any(static i => i < 0))
        {
            throw new InvalidDataException($"{file}: 'layers_to_transform' is {Short(v)}; expected a layer index ≥ 0, a non-empty list of them, or null");
        }

        return values;
    }

    private static LoraInit InitOf(JsonElement root, string file)
    {
        if (!root.TryGetProperty("init_lora_weights", out var v) || v.ValueKind is JsonValueKind.Null or JsonValueKind.True)
        {
            return LoraInit.KaimingUniform;
        }

        return v.ValueKind switch
        {
            JsonValueKind.False => LoraInit.Default,
            JsonValueKind.String when v.GetString() == "gaussian" => LoraInit.Gaussian,
            JsonValueKind.String => throw new NotSupportedException(
                $"{file}: 'init_lora_weights' is {Short(v)}: that init rewrites the base weights (PiSSA, OLoRA, LoftQ, CorDA, EVA), so the adapter only fits a transformed base; convert it to a plain LoRA adapter with PEFT first (save_pretrained(..., path_initial_model_for_weight_conversion=...))"),
            _ => throw new InvalidDataException($"{file}: 'init_lora_weights' is {Short(v)}; expected true, false or a method name"),
        };
    }

    private static Dictionary<string, T> Pattern<T>(JsonElement root, string file, string key, Func<JsonElement, T?> parse, string expected)
        where T : struct
    {
        var result = new Dictionary<string, T>(StringComparer.Ordinal);
        if (!root.TryGetProperty(key, out var v) || v.ValueKind == JsonValueKind.Null)
        {
            return result;
        }

        if (v.ValueKind != JsonValueKind.Object)
        {
            throw new InvalidDataException($"{file}: '{key}' is {Short(v)}; expected an object of module pattern → value");
        }

        foreach (var p in v.EnumerateObject())
        {
            T? value = p.Value.ValueKind == JsonValueKind.Number ? parse(p.Value) : null;
            result[p.Name] = value ?? throw new InvalidDataException($"{file}: '{key}.{p.Name}' is {Short(p.Value)}; expected {expected}");
        }

        return result;
    }

    private static void WriteNullable(Utf8JsonWriter json, string key, string? value)
    {
        if (value is null)
        {
            json.WriteNull(key);
        }
        else
        {
            json.WriteString(key, value);
        }
    }

    private static void WriteList(Utf8JsonWriter json, string key, IReadOnlyList<string>? values)
    {
        if (values is null)
        {
            json.WriteNull(key);
            return;
        }

        json.WriteStartArray(key);
        foreach (string v in values)
        {
            json.WriteStringValue(v);
        }

        json.WriteEndArray();
    }

    private static string Short(JsonElement v)
    {
        string raw = v.GetRawText();
        return raw.Length > 60 ? raw[..60] + "…" : raw;
    }
}
