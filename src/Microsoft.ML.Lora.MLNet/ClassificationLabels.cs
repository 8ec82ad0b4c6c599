using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// The classes of a text classifier: their count K (the label's key count) and, when the keys have text
/// values, their names in key order (Hugging Face's <c>id2label</c>). Saved next to the adapter as
/// <see cref="FileName"/>.
/// </summary>
internal sealed class ClassificationLabels
{
    /// <summary>File written into the adapter folder: <c>{"num_labels": K, "id2label": {"0": "…", …}}</c> (id2label only when named).</summary>
    public const string FileName = "labels.json";

    public ClassificationLabels(int count, IReadOnlyList<string>? names)
    {
        if (names is not null && names.Count != count)
        {
            throw new ArgumentException($"{names.Count} class names for {count} classes", nameof(names));
        }

        Count = count;
        Names = names;
    }

    public int Count { get; }

    public IReadOnlyList<string>? Names { get; }

    /// <summary>
    /// The classes of a saved classifier: <see cref="FileName"/>, or for a PEFT SEQ_CLS folder saved by PEFT
    /// itself (no such file) K from the rows of its <c>score</c> head and no names.
    /// </summary>
    /// <exception cref="InvalidDataException">The file is malformed, or the folder has no score head.</exception>
    public static ClassificationLabels Read(string adapterDirectory)
    {
        string path = Path.GetFullPath(Path.Combine(adapterDirectory, FileName));
        if (!File.Exists(path))
        {
            int k = PeftAdapter.NumLabels(adapterDirectory)
                ?? throw new InvalidDataException($"'{adapterDirectory}' has no {FileName} and its {PeftAdapter.WeightsFileName} has no score head (base_model.model.{SequenceClassification.HeadWeightName}): it is not a sequence-classification adapter");
            return new ClassificationLabels(k, null);
        }

        using var doc = StrictJson.Parse(File.ReadAllBytes(path), path, "labels");
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("num_labels", out var n) || n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out int count) || count < 2)
        {
            throw new InvalidDataException($"{path}: expected an object with \"num_labels\" ≥ 2");
        }

        List<string>? names = null;
        if (root.TryGetProperty("id2label", out var map) && map.ValueKind != JsonValueKind.Null)
        {
            names = [];
            for (int i = 0; i < count; i++)
            {
                if (map.ValueKind != JsonValueKind.Object || !map.TryGetProperty(i.ToString(CultureInfo.InvariantCulture), out var name) || name.ValueKind != JsonValueKind.String)
                {
                    throw new InvalidDataException($"{path}: id2label has no string for class {i} (num_labels = {count})");
                }

                names.Add(name.GetString()!);
            }
        }

        return new ClassificationLabels(count, names);
    }

    public string ToJson()
    {
        var root = new JsonObject { ["num_labels"] = Count };
        if (Names is not null)
        {
            var map = new JsonObject();
            for (int i = 0; i < Names.Count; i++)
            {
                map[i.ToString(CultureInfo.InvariantCulture)] = Names[i];
            }

            root["id2label"] = map;
        }

        return root.ToJsonString(new JsonSerializerOptions { WriteIndented = true });
    }
}
