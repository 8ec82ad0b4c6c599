using System.Text.Json;

namespace Microsoft.ML.Lora.Text;

/// <summary>
/// The special tokens a tokenizer.json "post_processor" puts around a single sequence when special
/// tokens are requested: TemplateProcessing's "single" template, Bert/RobertaProcessing's cls/sep,
/// nothing for ByteLevel; a Sequence concatenates its steps. Pair templates are not used here.
/// </summary>
internal sealed class TokenizerPostProcessor(int[] prefix, int[] suffix)
{
    public static readonly TokenizerPostProcessor None = new([], []);

    public int[] Prefix { get; } = prefix;

    public int[] Suffix { get; } = suffix;

    public static TokenizerPostProcessor Parse(TokenizerJson? json, Func<string, int?> tokenToId)
    {
        if (json is not { } j)
        {
            return None;
        }

        string? type = j.OptionalString("type");
        switch (type)
        {
            case "ByteLevel":
                return None;
            case "TemplateProcessing":
                return Template(j);
            case "BertProcessing":
            case "RobertaProcessing":
                return new TokenizerPostProcessor([PairId(j, "cls")], [PairId(j, "sep")]);
            case "Sequence":
            {
                var prefix = new List<int>();
                var suffix = new List<int>();
                foreach (var step in j.ObjectArray("processors"))
                {
                    var p = Parse(step, tokenToId);
                    prefix.AddRange(p.Prefix);
                    suffix.InsertRange(0, p.Suffix);
                }

                return new TokenizerPostProcessor([.. prefix], [.. suffix]);
            }

            default:
                throw j.Unsupported("post_processor", type);
        }
    }

    // "cls": ["[CLS]", 101]
    private static int PairId(TokenizerJson j, string key)
    {
        JsonElement v = j.Get(key) ?? throw j.Missing(key, "[token, id]");
        if (v.ValueKind != JsonValueKind.Array || v.GetArrayLength() != 2 || !TokenizerJson.TryGetTokenId(v[1], out int id))
        {
            throw j.Wrong(key, v, $"[token, id] with an id in [0, {TokenizerJson.MaxTokenId}]");
        }

        return id;
    }

    private static TokenizerPostProcessor Template(TokenizerJson j)
    {
        JsonElement single = j.Get("single") ?? throw j.Missing("single", "a template array");
        if (single.ValueKind != JsonValueKind.Array)
        {
            throw j.Wrong("single", single, "a template array");
        }

        TokenizerJson? specials = j.OptionalObject("special_tokens");
        var prefix = new List<int>();
        var suffix = new List<int>();
        bool seenSequence = false;
        int index = 0;
        foreach (JsonElement piece in single.EnumerateArray())
        {
            var item = new TokenizerJson(piece, j.Source, $"{j.Where("single")}[{index++}]");
            if (item.OptionalObject("Sequence") is not null)
            {
                seenSequence = true;
                continue;
            }

            TokenizerJson special = item.OptionalObject("SpecialToken") ?? throw new InvalidDataException($"{j.Source}: '{item.Path}' must hold \"Sequence\" or \"SpecialToken\"");
            string name = special.RequiredString("id");
            TokenizerJson entry = specials?.OptionalObject(name)
                ?? throw new InvalidDataException($"{j.Source}: '{special.Path}' names '{name}', which is not in '{j.Where("special_tokens")}'");
            JsonElement ids = entry.Get("ids") ?? throw entry.Missing("ids", "an array of ids");
            if (ids.ValueKind != JsonValueKind.Array)
            {
                throw entry.Wrong("ids", ids, "an array of ids");
            }

            foreach (JsonElement id in ids.EnumerateArray())
            {
                (seenSequence ? suffix : prefix).Add(TokenizerJson.TryGetTokenId(id, out int v) ? v : throw entry.Wrong("ids", ids, $"an array of token ids in [0, {TokenizerJson.MaxTokenId}]"));
            }
        }

        return new TokenizerPostProcessor([.. prefix], [.. suffix]);
    }
}
