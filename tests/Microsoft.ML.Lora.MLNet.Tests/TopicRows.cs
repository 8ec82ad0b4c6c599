namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// A separable three-class text task with string labels: each text is a few filler words around one word
/// of its class's list, at a random place. Held-out rows come from another seed.
/// </summary>
public static class TopicRows
{
    public static readonly string[] Classes = ["fruit", "tree", "weather"];

    private static readonly string[][] Words =
    [
        ["kiwi", "lime", "plum", "quince"],
        ["oak", "yew", "birch", "cedar"],
        ["hail", "sleet", "fog", "storm"],
    ];

    private static readonly string[] Filler = ["we", "saw", "a", "the", "at", "to", "and", "so", "then", "you", "it", "was"];

    /// <summary><paramref name="count"/> rows, classes in turn (balanced).</summary>
    public static TopicRow[] Make(int count, int seed)
    {
        var random = new Random(seed);
        var rows = new TopicRow[count];
        for (int i = 0; i < count; i++)
        {
            int label = i % Classes.Length;
            var words = Enumerable.Range(0, random.Next(2, 5)).Select(_ => Filler[random.Next(Filler.Length)]).ToList();
            words.Insert(random.Next(words.Count + 1), Words[label][random.Next(Words[label].Length)]);
            rows[i] = new TopicRow { Text = string.Join(' ', words), Label = Classes[label] };
        }

        return rows;
    }
}

/// <summary>A row as ML.NET's LoadFromEnumerable reads it: Text and Label are String columns.</summary>
public sealed class TopicRow
{
    public string Text { get; set; } = "";

    public string Label { get; set; } = "";
}
