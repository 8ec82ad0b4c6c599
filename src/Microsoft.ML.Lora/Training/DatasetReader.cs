using System.Collections;
using System.Text.Json;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Streams the rows of a JSONL, CSV or TSV file as <see cref="TokenRow"/>s: the file is read lazily, one
/// line at a time, each time the rows are enumerated, so a file larger than memory can be consumed (and
/// stopping early reads only the start). Bad rows throw <see cref="InvalidDataException"/> naming the file
/// and line, or are skipped and counted in <see cref="Report"/> with <see cref="TextDatasetOptions.SkipBadRows"/>.
/// An enumeration that finds no row at all throws.
/// </summary>
/// <remarks>
/// Row rules: a text or completion that is empty or whitespace is bad (a prompt may be empty); messages
/// need a non-empty list of objects with a string <c>role</c> (system, user, assistant) and a string
/// <c>content</c>; other fields are ignored. A row whose labels leave nothing to predict (e.g. a chat with
/// no assistant reply) is bad. Blank lines are skipped everywhere, also in CSV.
/// </remarks>
public sealed class TextDatasetReader : IEnumerable<TokenRow>
{
    private static readonly JsonDocumentOptions JsonOptions = new() { AllowDuplicateProperties = false, MaxDepth = 64 };

    private readonly Func<Stream> open;
    private readonly ITextTokenizer? tokenizer;

    /// <summary>Reads the file at <paramref name="path"/>.</summary>
    public TextDatasetReader(string path, ITextTokenizer? tokenizer, TextDatasetOptions? options = null)
        : this(() => OpenFile(path), path, tokenizer, options)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"data file '{path}' not found", path);
        }
    }

    /// <summary>
    /// Reads the stream that <paramref name="open"/> returns, once per enumeration (the reader disposes it).
    /// <paramref name="source"/> names it in errors and, with <see cref="DatasetFormat.Auto"/>, its extension picks CSV/TSV.
    /// </summary>
    /// <param name="open">Opens the data; called at the start of each enumeration.</param>
    /// <param name="source">File name for messages and format detection.</param>
    /// <param name="tokenizer">Required except for <see cref="DatasetFormat.Tokenized"/> rows.</param>
    /// <param name="options">Null = defaults.</param>
    public TextDatasetReader(Func<Stream> open, string source, ITextTokenizer? tokenizer, TextDatasetOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(open);
        ArgumentNullException.ThrowIfNull(source);
        Options = options ?? new TextDatasetOptions();
        Options.Validate();
        this.open = open;
        this.tokenizer = tokenizer;
        Source = source;
        Report = new DatasetReport(Options.MaxReportedBadRows) { Format = Options.Format };
    }

    /// <summary>The file name used in messages.</summary>
    public string Source { get; }

    /// <summary>The options in effect.</summary>
    public TextDatasetOptions Options { get; }

    /// <summary>Counts of the current (or last) enumeration; a new enumeration starts a new report.</summary>
    public DatasetReport Report { get; private set; }

    /// <inheritdoc/>
    public IEnumerator<TokenRow> GetEnumerator() => Read().GetEnumerator();

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();

    private static FileStream OpenFile(string path) =>
        new(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 1, FileOptions.SequentialScan);

    private IEnumerable<TokenRow> Read()
    {
        var format = Options.Format;
        if (format == DatasetFormat.Auto)
        {
            string extension = Path.GetExtension(Source).ToLowerInvariant();
            format = extension switch
            {
                ".csv" => DatasetFormat.Csv,
                ".tsv" or ".tab" => DatasetFormat.Tsv,
                _ => DatasetFormat.Auto,
            };
        }

        var report = new DatasetReport(Options.MaxReportedBadRows) { Format = format };
        Report = report;
        if (format != DatasetFormat.Auto)
        {
            CheckTokenizer(format, 0);
        }

        using var lines = new DatasetLineReader(open());
        var rows = format is DatasetFormat.Csv or DatasetFormat.Tsv ? ReadDelimited(lines, format, report) : ReadJsonLines(lines, report);
        foreach (var row in rows)
        {
            report.AddRow();
            yield return row;
        }

        if (report.Rows == 0)
        {
            string why = report.SkippedRows > 0
                ? $"all {report.SkippedRows} rows are bad; first: {report.SkipReasons.FirstOrDefault()}"
                : "the file is empty";
            throw new InvalidDataException($"{Source}: no rows ({why})");
        }
    }

    private IEnumerable<TokenRow> ReadJsonLines(DatasetLineReader lines, DatasetReport report)
    {
        while (lines.TryReadLine(out string? text, out string? encodingError))
        {
            if (text is not null && string.IsNullOrWhiteSpace(text))
            {
                continue;
            }

            TokenRow? row = null;
            string? bad = encodingError;
            if (text is not null)
            {
                try
                {
                    row = ParseJsonRow(text, lines.LineNumber, report);
                }
                catch (BadRowException e)
                {
                    bad = e.Message;
                }
            }

            if (row is not null)
            {
                yield return row;
            }
            else
            {
                Bad(report, lines.LineNumber, bad!);
            }
        }
    }

    private TokenRow ParseJsonRow(string text, int line, DatasetReport report)
    {
        JsonDocument doc;
        try
        {
            doc = JsonDocument.Parse(text, JsonOptions);
        }
        catch (JsonException e)
        {
            throw new BadRowException($"not valid JSON ({e.Message})");
        }

        using (doc)
        {
            var root = doc.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
            {
                throw new BadRowException($"expected a JSON object, got {root.ValueKind}");
            }

            if (report.Format == DatasetFormat.Auto)
            {
                report.Format = DetectKind(root);
                CheckTokenizer(report.Format, line);
            }

            var row = report.Format switch
            {
                DatasetFormat.Text => DatasetTokenization.Text(tokenizer!, RequireText(root, Options.TextField), Options, line),
                DatasetFormat.PromptCompletion => DatasetTokenization.PromptCompletion(tokenizer!, RequireString(root, Options.PromptField), RequireText(root, Options.CompletionField), Options, line),
                DatasetFormat.Messages => DatasetTokenization.Chat(tokenizer!, RenderMessages(root, line), Options, line),
                DatasetFormat.Tokenized => ParseTokenized(text, line),
                _ => throw new InvalidDataException($"{Source}: --format {report.Format} is not a JSONL format"),
            };
            return Checked(row);
        }
    }

    private IEnumerable<TokenRow> ReadDelimited(DatasetLineReader lines, DatasetFormat format, DatasetReport report)
    {
        char delimiter = format == DatasetFormat.Tsv ? '\t' : ',';
        List<string>? header = null;
        int textIndex = -1, completionIndex = -1;
        while (lines.TryReadLine(out string? text, out string? encodingError))
        {
            int line = lines.LineNumber;
            if (text is not null && text.Length == 0)
            {
                continue;
            }

            string? bad = encodingError;
            List<string>? fields = text is null ? null : DatasetCsv.ReadRecord(text, lines, delimiter, out bad);
            if (header is null)
            {
                if (fields is null)
                {
                    throw new InvalidDataException($"{Source} line {line}: the header row is unreadable: {bad}");
                }

                header = fields;
                (textIndex, completionIndex) = FindColumns(header, line);
                continue;
            }

            TokenRow? row = null;
            if (fields is not null)
            {
                try
                {
                    if (fields.Count != header.Count)
                    {
                        throw new BadRowException($"has {fields.Count} fields but the header has {header.Count} ({string.Join(", ", header)})");
                    }

                    string value = fields[textIndex];
                    row = completionIndex < 0
                        ? DatasetTokenization.Text(tokenizer!, NotBlank(value, $"column \"{Options.TextColumn}\""), Options, line)
                        : DatasetTokenization.PromptCompletion(tokenizer!, value, NotBlank(fields[completionIndex], $"column \"{Options.CompletionColumn}\""), Options, line);
                    row = Checked(row);
                }
                catch (BadRowException e)
                {
                    bad = e.Message;
                }
            }

            if (row is not null)
            {
                yield return row;
            }
            else
            {
                Bad(report, line, bad!);
            }
        }
    }

    private (int Text, int Completion) FindColumns(List<string> header, int line)
    {
        var duplicate = header.GroupBy(static h => h, StringComparer.Ordinal).FirstOrDefault(static g => g.Count() > 1);
        if (duplicate is not null)
        {
            throw new InvalidDataException($"{Source} line {line}: the header names column \"{duplicate.Key}\" twice");
        }

        int Find(string name, string option)
        {
            int index = header.IndexOf(name);
            return index >= 0
                ? index
                : throw new InvalidDataException($"{Source} line {line}: no column \"{name}\" in the header ({string.Join(", ", header.Select(static h => $"\"{h}\""))}); set TextDatasetOptions.{option} (CLI: --{(option == nameof(TextDatasetOptions.TextColumn) ? "text-column" : "completion-column")})");
        }

        int text = Find(Options.TextColumn, nameof(TextDatasetOptions.TextColumn));
        int completion = Options.CompletionColumn is null ? -1 : Find(Options.CompletionColumn, nameof(TextDatasetOptions.CompletionColumn));
        return (text, completion);
    }

    private DatasetFormat DetectKind(JsonElement root)
    {
        if (root.TryGetProperty(Options.MessagesField, out _))
        {
            return DatasetFormat.Messages;
        }

        if (root.TryGetProperty("input_ids", out _))
        {
            return DatasetFormat.Tokenized;
        }

        if (root.TryGetProperty(Options.PromptField, out _) && root.TryGetProperty(Options.CompletionField, out _))
        {
            return DatasetFormat.PromptCompletion;
        }

        if (root.TryGetProperty(Options.TextField, out _))
        {
            return DatasetFormat.Text;
        }

        string keys = string.Join(", ", root.EnumerateObject().Select(static p => $"\"{p.Name}\""));
        throw new BadRowException($"cannot tell the row format from its keys ({keys}); expected \"{Options.MessagesField}\", \"input_ids\", \"{Options.PromptField}\" + \"{Options.CompletionField}\" or \"{Options.TextField}\" — set --format or the field names");
    }

    private void CheckTokenizer(DatasetFormat format, int line)
    {
        string where = line > 0 ? $"{Source} line {line}" : Source;
        if (format == DatasetFormat.Tokenized)
        {
            return;
        }

        if (tokenizer is null)
        {
            throw new InvalidDataException($"{where}: {format} rows need a tokenizer, and none was given");
        }

        if (format == DatasetFormat.Messages && Options.ChatTemplate is null)
        {
            throw new InvalidDataException($"{where}: rows hold \"{Options.MessagesField}\" but no chat template was given; set {ChatTemplate.OptionName} to one of {string.Join(", ", ChatTemplate.Names)} (or load the model's tokenizer_config.json)");
        }

        if (format != DatasetFormat.Messages && Options.AppendEos && tokenizer.EosTokenId is null)
        {
            throw new InvalidDataException($"{where}: TextDatasetOptions.AppendEos is set but the tokenizer has no EOS token; turn AppendEos off");
        }
    }

    private ChatRendering RenderMessages(JsonElement root, int line)
    {
        string field = Options.MessagesField;
        if (!root.TryGetProperty(field, out var list))
        {
            throw new BadRowException($"missing \"{field}\"");
        }

        List<ChatMessage> messages;
        try
        {
            messages = ChatMessageList.Parse(list, field);
        }
        catch (InvalidDataException e)
        {
            throw new BadRowException(e.Message);
        }

        try
        {
            return Options.ChatTemplate!.Render(messages);
        }
        catch (ArgumentException e)
        {
            throw new BadRowException(e.Message);
        }
    }

    private TokenRow ParseTokenized(string text, int line)
    {
        try
        {
            return TokenRowReader.ParseLine(text, Source, line, Options.VocabSize);
        }
        catch (InvalidDataException e)
        {
            string prefix = $"{Source} line {line}: ";
            throw new BadRowException(e.Message.StartsWith(prefix, StringComparison.Ordinal) ? e.Message[prefix.Length..] : e.Message);
        }
    }

    private TokenRow Checked(TokenRow row)
    {
        if (!DatasetTokenization.HasTarget(row))
        {
            string hint = Report.Format == DatasetFormat.Messages && !Options.TrainOnPrompt ? " (no assistant reply? set TrainOnPrompt to train on whole conversations)" : string.Empty;
            throw new BadRowException($"nothing to train on: {row.InputIds.Length} tokens and no label after the first{hint}");
        }

        return row;
    }

    private void Bad(DatasetReport report, int line, string reason)
    {
        string message = $"{Source} line {line}: {reason}";
        if (!Options.SkipBadRows)
        {
            throw new InvalidDataException(message + " (set SkipBadRows / --skip-bad-rows to skip such rows)");
        }

        report.AddSkipped(message);
    }

    private static string RequireString(JsonElement obj, string field, string? where = null)
    {
        string owner = where is null ? string.Empty : where + ": ";
        if (!obj.TryGetProperty(field, out var value))
        {
            throw new BadRowException($"{owner}missing \"{field}\"");
        }

        return value.ValueKind == JsonValueKind.String
            ? value.GetString()!
            : throw new BadRowException($"{owner}\"{field}\" must be a string, got {Describe(value)}");
    }

    private static string RequireText(JsonElement obj, string field) => NotBlank(RequireString(obj, field), $"\"{field}\"");

    private static string NotBlank(string value, string what) =>
        string.IsNullOrWhiteSpace(value) ? throw new BadRowException($"{what} is empty") : value;

    private static string Describe(JsonElement e) => ChatMessageList.Describe(e);

    /// <summary>A problem with one row: skippable, reported with file and line by the caller.</summary>
    private sealed class BadRowException(string message) : Exception(message);
}
