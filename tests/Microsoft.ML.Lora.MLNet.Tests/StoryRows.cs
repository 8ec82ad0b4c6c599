namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// Small tasks in TinyStories' own words, built from a seed, so the real model's pretrained features carry over:
/// a three-topic classification, a mood regression and a sentence-pair task (how many of the two name a food). Held-out rows come from
/// another seed (new sentences over the same words).
/// </summary>
public static class StoryRows
{
    public static readonly string[] Topics = ["animal", "food", "toy"];

    private static readonly string[][] TopicWords =
    [
        ["cat", "dog", "bird", "fish", "frog", "bunny"],
        ["cake", "apple", "cookie", "soup", "bread", "pie"],
        ["ball", "doll", "kite", "car", "train", "truck"],
    ];

    private static readonly string[] Names = ["Lily", "Tom", "Ben", "Sue", "Max", "Mia", "Tim", "Anna"];

    private static readonly string[] TopicTemplates =
    [
        "{0} saw a {1} in the park.",
        "{0} had a big {1}.",
        "One day, {0} found a {1}.",
        "{0} and mom looked at the {1}.",
        "The {1} was near {0}.",
        "{0} wanted a {1} so much.",
    ];

    // Mood of a sentence: −1, 0 or +1 by its adjective.
    private static readonly (string Word, float Value)[] Moods =
    [
        ("happy", 1f), ("glad", 1f), ("excited", 1f),
        ("sad", -1f), ("angry", -1f), ("scared", -1f),
        ("tired", 0f), ("quiet", 0f), ("calm", 0f),
    ];

    private static readonly string[] MoodTemplates =
    [
        "{0} was very {1}.",
        "{0} felt {1} that day.",
        "After the game, {0} was {1}.",
        "{0} looked {1} and went home.",
    ];

    /// <summary><paramref name="count"/> topic rows, topics in turn (balanced).</summary>
    public static TopicRow[] Topic(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            int topic = i % Topics.Length;
            return new TopicRow { Label = Topics[topic], Sentence1 = TopicSentence(random, topic) };
        })];
    }

    /// <summary><paramref name="count"/> mood rows, moods in turn.</summary>
    public static MoodRow[] Mood(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            var (word, value) = Moods[(i + random.Next(3) * 3) % Moods.Length];
            string template = MoodTemplates[random.Next(MoodTemplates.Length)];
            return new MoodRow { Sentence1 = string.Format(template, Names[random.Next(Names.Length)], word), Label = value };
        })];
    }

    /// <summary>The pair task's classes: how many of the two sentences name a food.</summary>
    public static readonly string[] FoodCounts = ["none", "one", "both"];

    /// <summary>
    /// <paramref name="count"/> sentence pairs labelled by how many of the two sentences name a food ("none", "one",
    /// "both", in turn). One sentence alone tells at most 2/3 of the labels (see the pair test), so beating that
    /// needs both.
    /// </summary>
    public static PairRow[] Pairs(int count, int seed)
    {
        var random = new Random(seed);
        return [.. Enumerable.Range(0, count).Select(i =>
        {
            int foods = i % FoodCounts.Length;
            bool firstIsFood = foods == 2 || (foods == 1 && random.Next(2) == 0);
            bool secondIsFood = foods == 2 || (foods == 1 && !firstIsFood);
            return new PairRow { Sentence1 = TopicSentence(random, Topic(random, firstIsFood)), Sentence2 = TopicSentence(random, Topic(random, secondIsFood)), Label = FoodCounts[foods] };
        })];
    }

    // Food is topic 1; a non-food sentence is an animal or a toy.
    private static int Topic(Random random, bool food) => food ? 1 : random.Next(2) * 2;

    private static string TopicSentence(Random random, int topic) =>
        string.Format(TopicTemplates[random.Next(TopicTemplates.Length)], Names[random.Next(Names.Length)], TopicWords[topic][random.Next(TopicWords[topic].Length)]);
}

/// <summary>A topic row as ML.NET reads it: String Sentence1 and Label.</summary>
public sealed class TopicRow
{
    public string Sentence1 { get; set; } = "";

    public string Label { get; set; } = "";
}

/// <summary>A mood row: String Sentence1, Single Label.</summary>
public sealed class MoodRow
{
    public string Sentence1 { get; set; } = "";

    public float Label { get; set; }
}

/// <summary>A sentence pair: String Sentence1 and Sentence2, String Label ("none", "one" or "both").</summary>
public sealed class PairRow
{
    public string Sentence1 { get; set; } = "";

    public string Sentence2 { get; set; } = "";

    public string Label { get; set; } = "";
}
