namespace Microsoft.ML.Lora.Tests.Pipeline;

/// <summary>
/// A small separable text task: each text is filler words around one keyword, and the keyword's topic is
/// the class. Filler and keyword positions are random, so the class must be read from the keyword wherever
/// it stands; held-out rows are drawn with another seed.
/// </summary>
internal static class SyntheticTopics
{
    public static readonly string[][] Keywords =
    [
        ["cat", "dog", "cow", "hen"],
        ["car", "bus", "van", "jet"],
        ["red", "tan", "blue", "pink"],
    ];

    private static readonly string[] Filler = ["the", "a", "one", "big", "old", "new", "my", "his", "so", "it", "is", "on"];

    /// <summary>Rows of (text, class) with classes 0…<paramref name="classes"/>−1 in turn (balanced).</summary>
    public static (string[] Texts, int[] Labels) Rows(int count, int classes, int seed)
    {
        var random = new Random(seed);
        var texts = new string[count];
        var labels = new int[count];
        for (int i = 0; i < count; i++)
        {
            int label = i % classes;
            var words = Enumerable.Range(0, random.Next(2, 5)).Select(_ => Filler[random.Next(Filler.Length)]).ToList();
            words.Insert(random.Next(words.Count + 1), Keywords[label][random.Next(Keywords[label].Length)]);
            texts[i] = string.Join(' ', words);
            labels[i] = label;
        }

        return (texts, labels);
    }
}
