using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Lora;

/// <summary>What one tensor key of an adapter file stands for.</summary>
internal enum PeftKeyKind
{
    /// <summary><c>…&lt;module&gt;.lora_A.weight</c> (r, in).</summary>
    LoraA,

    /// <summary><c>…&lt;module&gt;.lora_B.weight</c> (out, r).</summary>
    LoraB,

    /// <summary><c>…&lt;module&gt;.base_layer.bias</c> or <c>…&lt;module&gt;.bias</c>: a trained bias.</summary>
    Bias,

    /// <summary><c>…&lt;param&gt;</c> of a module in modules_to_save, saved whole.</summary>
    Whole,
}

/// <summary>One parsed key: <see cref="Target"/> is the module path (LoRA, bias) or the parameter name (whole).</summary>
internal readonly record struct PeftKey(string Key, PeftKeyKind Kind, string Target, string? AdapterName);

/// <summary>
/// PEFT's tensor names in <c>adapter_model.safetensors</c>. PEFT's <c>get_peft_model_state_dict</c> keeps
/// the live names under the <c>PeftModel</c> wrapper (<c>base_model.model.</c> + the transformers path) and
/// removes the adapter name: <c>…q_proj.lora_A.default.weight</c> → <c>…q_proj.lora_A.weight</c>, and
/// <c>…lm_head.modules_to_save.default.weight</c> → <c>…lm_head.weight</c>. The Linear an adapter wraps is
/// PEFT's <c>base_layer</c>, so a trained bias of an adapted Linear is <c>…q_proj.base_layer.bias</c>
/// (huggingface/peft#3306); <c>…q_proj.bias</c> (PEFT before 0.7) is read too.
/// </summary>
internal static partial class PeftAdapterKeys
{
    /// <summary>The prefix every key has (<c>PeftModelForCausalLM.base_model</c> = LoraModel, whose <c>model</c> is the transformers model).</summary>
    public const string Prefix = "base_model.model.";

    public static string LoraA(string module) => $"{Prefix}{module}.lora_A.weight";

    public static string LoraB(string module) => $"{Prefix}{module}.lora_B.weight";

    public static string AdaptedBias(string module) => $"{Prefix}{module}.base_layer.bias";

    public static string PlainBias(string module) => $"{Prefix}{module}.bias";

    public static string Whole(string parameter) => Prefix + parameter;

    /// <summary>Parses <paramref name="key"/>; unknown layouts are <see cref="InvalidDataException"/> or, for known PEFT variants, <see cref="NotSupportedException"/>.</summary>
    public static PeftKey Parse(string key, string file)
    {
        if (!key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{file}: tensor '{key}' does not start with '{Prefix}', the prefix PEFT gives every key of a causal-LM adapter — is this a PEFT adapter file?");
        }

        string rest = key[Prefix.Length..];
        if (Unsupported().Match(rest) is { Success: true } u)
        {
            throw new NotSupportedException($"{file}: tensor '{key}' is a {u.Groups[1].Value} tensor (DoRA or an embedding adapter); only LoRA on Linear layers is supported");
        }

        if (Lora().Match(rest) is { Success: true } m)
        {
            string? name = m.Groups["name"].Success ? m.Groups["name"].Value : null;
            return new PeftKey(key, m.Groups["ab"].Value == "A" ? PeftKeyKind.LoraA : PeftKeyKind.LoraB, m.Groups["module"].Value, name);
        }

        if (rest.Contains(".lora_", StringComparison.Ordinal))
        {
            throw new InvalidDataException($"{file}: tensor '{key}' looks like LoRA but is not '<module>.lora_A.weight' / '<module>.lora_B.weight' (or with an adapter name before '.weight')");
        }

        if (rest.EndsWith(".base_layer.bias", StringComparison.Ordinal))
        {
            return new PeftKey(key, PeftKeyKind.Bias, rest[..^".base_layer.bias".Length], null);
        }

        if (rest.EndsWith(".bias", StringComparison.Ordinal))
        {
            return new PeftKey(key, PeftKeyKind.Bias, rest[..^".bias".Length], null);
        }

        return new PeftKey(key, PeftKeyKind.Whole, rest, null);
    }

    [GeneratedRegex(@"^(?<module>.+)\.lora_(?<ab>A|B)(?:\.(?<name>[^.]+))?\.weight$", RegexOptions.CultureInvariant)]
    private static partial Regex Lora();

    [GeneratedRegex(@"\.(lora_magnitude_vector|lora_embedding_[AB])(\.|$)", RegexOptions.CultureInvariant)]
    private static partial Regex Unsupported();
}
