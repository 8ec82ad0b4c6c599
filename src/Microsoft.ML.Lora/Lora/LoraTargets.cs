using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Lora.Modules;

namespace Microsoft.ML.Lora.Lora;

/// <summary>Matches module paths against LoRA options the way PEFT does.</summary>
public static class LoraTargets
{
    private static readonly Regex LayerIndex = new(@"(?:^|\.)layers\.(\d+)\.", RegexOptions.CultureInvariant);

    /// <summary>Whether <paramref name="path"/> equals <paramref name="name"/> or ends with "." + name.</summary>
    public static bool NameMatches(string path, string name) =>
        path == name || (path.Length > name.Length && path.EndsWith(name, StringComparison.Ordinal) && path[path.Length - name.Length - 1] == '.');

    /// <summary>
    /// Whether "all-linear" covers the module at <paramref name="path"/>: every Linear but the output head
    /// (<c>lm_head</c>, or a classifier's <c>score</c>, which is trained fully instead), as in PEFT.
    /// </summary>
    public static bool InAllLinear(string path) => path is not ("lm_head" or Models.SequenceClassification.HeadName);

    /// <summary>
    /// The Linears of <paramref name="linears"/> that <paramref name="options"/> adapts; unknown target names are an
    /// error listing what exists. A classifier's <c>score</c> head is never adapted (it is a module to save).
    /// </summary>
    public static List<Linear> Resolve(IReadOnlyList<Linear> linears, LoraOptions options)
    {
        var result = new List<Linear>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        if (linears.Any(static l => l.Name == Models.SequenceClassification.HeadName) && options.TargetModules.FirstOrDefault(static t => NameMatches(Models.SequenceClassification.HeadName, t)) is { } head)
        {
            throw new ArgumentException($"LoRA target module '{head}' is the classification head '{Models.SequenceClassification.HeadName}'; it is trained fully and saved with the adapter (PEFT's modules_to_save), never LoRA-adapted — remove it from the targets");
        }

        foreach (var linear in linears)
        {
            string? hit = options.TargetModules.FirstOrDefault(t => t == LoraOptions.AllLinear ? InAllLinear(linear.Name) : NameMatches(linear.Name, t));
            if (hit is null || !InLayers(linear.Name, options.LayersToTransform))
            {
                continue;
            }

            used.Add(hit);
            result.Add(linear);
        }

        var unknown = options.TargetModules.Where(t => t != LoraOptions.AllLinear && !linears.Any(l => NameMatches(l.Name, t))).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"LoRA target module(s) {string.Join(", ", unknown.Select(static u => $"'{u}'"))} match no Linear layer of this model; its linear layers are: {string.Join(", ", Suffixes(linears))} (or use \"{LoraOptions.AllLinear}\")");
        }

        if (result.Count == 0)
        {
            throw new ArgumentException($"LoRA targets {string.Join(", ", options.TargetModules)} with layers_to_transform [{string.Join(", ", options.LayersToTransform ?? [])}] select no layer; the model has {linears.Count(static l => InAllLinear(l.Name))} linear layers in {CountLayers(linears)} decoder layers");
        }

        return result;
    }

    /// <summary>PEFT's pattern rule: the key (a regex) matches the whole path or a dotted suffix of it.</summary>
    public static bool PatternMatches(string path, string key) =>
        Regex.IsMatch(path, $"^(?:.*\\.)?(?:{key})$", RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));

    /// <summary>Rank and α for a module after the pattern overrides.</summary>
    public static (int Rank, double Alpha) RankAndAlpha(string path, LoraOptions options)
    {
        int r = options.RankPattern.FirstOrDefault(kv => PatternMatches(path, kv.Key)) is { Key: not null } rk ? rk.Value : options.Rank;
        double a = options.AlphaPattern.FirstOrDefault(kv => PatternMatches(path, kv.Key)) is { Key: not null } ak ? ak.Value : options.Alpha;
        return (r, a);
    }

    /// <summary>Distinct short names (<c>q_proj</c>, <c>mlp.up_proj</c>…): the part after the layer index.</summary>
    public static IEnumerable<string> Suffixes(IEnumerable<Linear> linears) =>
        linears.Select(static l => LayerIndex.Match(l.Name) is { Success: true } m ? l.Name[(m.Index + m.Length)..] : l.Name).Distinct();

    private static bool InLayers(string path, IReadOnlyList<int>? layers)
    {
        if (layers is null)
        {
            return true;
        }

        var m = LayerIndex.Match(path);
        return m.Success && layers.Contains(int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
    }

    private static int CountLayers(IEnumerable<Linear> linears) =>
        linears.Select(static l => LayerIndex.Match(l.Name)).Where(static m => m.Success).Select(static m => m.Groups[1].Value).Distinct().Count();
}
