using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora;

/// <summary>
/// The classes of a text-classification step: their count K and, when known, their names in index order
/// (Hugging Face's <c>id2label</c>). Saved next to the adapter as <see cref="FileName"/>.
/// </summary>
internal sealed class ClassificationLabels
{
    /// <summary>File written into the adapter folder: <c>{"num_labels": K, "id2label": {"0": "…", …}}</c> (id2label only when named).</summary>
    public const string FileName = "labels.json";

    private ClassificationLabels(int count, IReadOnlyList<string>? names)
    {
        Count = count;
        Names = names;
    }

    public int Count { get; }

    public IReadOnlyList<string>? Names { get; }

    /// <summary>The classes and each row's class index, from the label column (int indices or string names).</summary>
    public static (ClassificationLabels Labels, int[] Indices) FromColumn(TextTable data, LoraTextClassificationOptions options)
    {
        const string option = "LoraTextClassificationOptions.LabelColumn";
        string column = options.LabelColumn;
        var type = PipelineColumns.ColumnType(data, column, option);
        if (type == typeof(int))
        {
            var values = data.GetColumn<int>(column);
            int k = options.NumLabels ?? options.LabelNames?.Count ?? (values.Max() + 1);
            for (int i = 0; i < values.Count; i++)
            {
                if (values[i] < 0 || values[i] >= k)
                {
                    string bound = options.NumLabels is not null ? "NumLabels" : options.LabelNames is not null ? "the count of LabelNames" : "inferred";
                    throw new ArgumentException($"column '{column}' ({option}), row {i}: label {values[i]} is outside 0…{k - 1} (K = {k}, {bound})");
                }
            }

            if (k < 2)
            {
                throw new ArgumentException($"column '{column}' ({option}): every label is 0, so there is only one class; classification needs at least 2 (set NumLabels when a class is absent from the data)");
            }

            return (new ClassificationLabels(k, options.LabelNames), [.. values]);
        }

        if (type == typeof(string))
        {
            var values = data.GetColumn<string>(column);
            for (int i = 0; i < values.Count; i++)
            {
                if (string.IsNullOrEmpty(values[i]))
                {
                    throw new ArgumentException($"column '{column}' ({option}), row {i}: the label is {(values[i] is null ? "null" : "empty")}");
                }
            }

            var names = options.LabelNames ?? values.Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToList();
            var index = names.Select((n, i) => (n, i)).ToDictionary(static p => p.n, static p => p.i, StringComparer.Ordinal);
            var indices = new int[values.Count];
            for (int i = 0; i < values.Count; i++)
            {
                indices[i] = index.TryGetValue(values[i], out int id) ? id
                    : throw new ArgumentException($"column '{column}' ({option}), row {i}: label '{values[i]}' is not one of LabelNames [{string.Join(", ", names)}]");
            }

            if (names.Count < 2)
            {
                throw new ArgumentException($"column '{column}' ({option}): only one class ('{names[0]}'); classification needs at least 2 (set LabelNames when a class is absent from the data)");
            }

            if (options.NumLabels is int k && k != names.Count)
            {
                throw new ArgumentException($"LoraTextClassificationOptions.NumLabels = {k} but column '{column}' has {names.Count} distinct labels [{string.Join(", ", names)}]");
            }

            return (new ClassificationLabels(names.Count, names), indices);
        }

        throw new ArgumentException($"column '{column}' ({option}) holds {TextTable.TypeName(type)}; expected int (class indices 0…K−1) or string (class names)");
    }

    /// <summary>
    /// The classes of a saved step; <paramref name="options"/> may restate them but must agree. A PEFT SEQ_CLS
    /// folder without <see cref="FileName"/> (saved by PEFT itself) gives K from the rows of its <c>score</c> head
    /// and the names from <see cref="LoraTextClassificationOptions.LabelNames"/>, if any.
    /// </summary>
    public static ClassificationLabels Read(string adapterDirectory, LoraTextClassificationOptions options)
    {
        string path = Path.GetFullPath(Path.Combine(adapterDirectory, FileName));
        if (!File.Exists(path))
        {
            return FromPeftHead(adapterDirectory, options);
        }

        using var doc = StrictJson.Parse(File.ReadAllBytes(path), path, "labels");
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object || !root.TryGetProperty("num_labels", out var n) || n.ValueKind != JsonValueKind.Number || !n.TryGetInt32(out int k) || k < 2)
        {
            throw new InvalidDataException($"{path}: expected an object with \"num_labels\" ≥ 2");
        }

        List<string>? names = null;
        if (root.TryGetProperty("id2label", out var map) && map.ValueKind != JsonValueKind.Null)
        {
            names = [];
            for (int i = 0; i < k; i++)
            {
                if (map.ValueKind != JsonValueKind.Object || !map.TryGetProperty(i.ToString(CultureInfo.InvariantCulture), out var name) || name.ValueKind != JsonValueKind.String)
                {
                    throw new InvalidDataException($"{path}: id2label has no string for class {i} (num_labels = {k})");
                }

                names.Add(name.GetString()!);
            }
        }

        if (options.NumLabels is int want && want != k)
        {
            throw new ArgumentException($"LoraTextClassificationOptions.NumLabels = {want} but the adapter in '{adapterDirectory}' was trained with {k} classes", nameof(options));
        }

        if (options.LabelNames is not null && (names is null || !options.LabelNames.SequenceEqual(names, StringComparer.Ordinal)))
        {
            throw new ArgumentException($"LoraTextClassificationOptions.LabelNames = [{string.Join(", ", options.LabelNames)}] differ from the adapter's [{string.Join(", ", names ?? [])}] in '{adapterDirectory}'", nameof(options));
        }

        return new ClassificationLabels(k, names);
    }

    private static ClassificationLabels FromPeftHead(string adapterDirectory, LoraTextClassificationOptions options)
    {
        int k = Lora.PeftAdapter.NumLabels(adapterDirectory)
            ?? throw new InvalidDataException($"'{adapterDirectory}' has no {FileName} and its {Lora.PeftAdapter.WeightsFileName} has no score head (base_model.model.{Models.SequenceClassification.HeadWeightName}): it is not a sequence-classification adapter");
        if (options.NumLabels is int want && want != k)
        {
            throw new ArgumentException($"LoraTextClassificationOptions.NumLabels = {want} but the score head of the adapter in '{adapterDirectory}' has {k} rows (classes)", nameof(options));
        }

        if (options.LabelNames is { } names && names.Count != k)
        {
            throw new ArgumentException($"LoraTextClassificationOptions.LabelNames has {names.Count} names but the score head of the adapter in '{adapterDirectory}' has {k} rows (classes)", nameof(options));
        }

        return new ClassificationLabels(k, options.LabelNames);
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
