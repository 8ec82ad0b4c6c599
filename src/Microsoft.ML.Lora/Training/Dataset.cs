using System.Collections;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// A data file read into memory as <see cref="TokenRow"/>s, ready for <c>Trainer.Train</c> (which
/// takes an <see cref="IReadOnlyList{T}"/>). For files that do not fit in memory use <see cref="Open"/>,
/// which streams.
/// </summary>
/// <example><code>
/// var data = TextDataset.Load("train.jsonl", tokenizer, new TextDatasetOptions { ChatTemplate = ChatTemplate.FromName("chatml") });
/// Console.WriteLine(data.Report);
/// trainer.Train(data);
/// </code></example>
public sealed class TextDataset : IReadOnlyList<TokenRow>
{
    private const int ProgressEvery = 1024;

    private readonly List<TokenRow> rows;

    private TextDataset(string source, List<TokenRow> rows, DatasetReport report)
    {
        Source = source;
        this.rows = rows;
        Report = report;
    }

    /// <summary>The file the rows came from.</summary>
    public string Source { get; }

    /// <summary>Format, row count and skipped bad rows of the load.</summary>
    public DatasetReport Report { get; }

    /// <inheritdoc/>
    public int Count => rows.Count;

    /// <inheritdoc/>
    public TokenRow this[int index] => rows[index];

    /// <summary>A lazy reader over <paramref name="path"/>: the file is read as the rows are enumerated.</summary>
    /// <param name="path">A .jsonl, .csv or .tsv file.</param>
    /// <param name="tokenizer">Required except for pre-tokenized rows.</param>
    /// <param name="options">Null = defaults.</param>
    public static TextDatasetReader Open(string path, ITextTokenizer? tokenizer, TextDatasetOptions? options = null) =>
        new(path, tokenizer, options);

    /// <summary>Reads and tokenizes every row of <paramref name="path"/> (see <see cref="TextDatasetReader"/> for the rules).</summary>
    /// <param name="path">A .jsonl, .csv or .tsv file.</param>
    /// <param name="tokenizer">Required except for pre-tokenized rows.</param>
    /// <param name="options">Null = defaults.</param>
    /// <param name="progress">Rows read so far, every 1024 rows and at the end.</param>
    /// <param name="cancellationToken">Checked between rows.</param>
    /// <exception cref="InvalidDataException">A bad row (file + line), or no rows.</exception>
    public static TextDataset Load(string path, ITextTokenizer? tokenizer, TextDatasetOptions? options = null, IProgress<int>? progress = null, CancellationToken cancellationToken = default) =>
        Load(Open(path, tokenizer, options), progress, cancellationToken);

    /// <summary>Materialises <paramref name="reader"/>.</summary>
    public static TextDataset Load(TextDatasetReader reader, IProgress<int>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        var rows = new List<TokenRow>();
        foreach (var row in reader)
        {
            cancellationToken.ThrowIfCancellationRequested();
            rows.Add(row);
            if (rows.Count % ProgressEvery == 0)
            {
                progress?.Report(rows.Count);
            }
        }

        progress?.Report(rows.Count);
        return new TextDataset(reader.Source, rows, reader.Report);
    }

    /// <inheritdoc/>
    public IEnumerator<TokenRow> GetEnumerator() => rows.GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
