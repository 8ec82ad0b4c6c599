namespace Microsoft.ML.Lora.Training;

/// <summary>The names of <see cref="DatasetFormat"/> values as the CLI and the training service spell them.</summary>
public static class DatasetFormats
{
    private static readonly (string Name, DatasetFormat Format)[] Table =
    [
        ("auto", DatasetFormat.Auto),
        ("text", DatasetFormat.Text),
        ("prompt-completion", DatasetFormat.PromptCompletion),
        ("messages", DatasetFormat.Messages),
        ("tokenized", DatasetFormat.Tokenized),
        ("csv", DatasetFormat.Csv),
        ("tsv", DatasetFormat.Tsv),
    ];

    /// <summary>Every name, in the order of the enum.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.Select(static e => e.Name).ToArray();

    /// <summary>Looks a name up (case-insensitive); false when it names no format.</summary>
    public static bool TryParse(string? name, out DatasetFormat format)
    {
        foreach (var (n, f) in Table)
        {
            if (string.Equals(n, name, StringComparison.OrdinalIgnoreCase))
            {
                format = f;
                return true;
            }
        }

        format = DatasetFormat.Auto;
        return false;
    }
}
