using System.CommandLine;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// How a data file becomes token rows: pre-tokenized JSONL (<c>input_ids</c>), or text — JSONL with
/// <c>text</c>, <c>prompt</c>+<c>completion</c> or <c>messages</c>, CSV/TSV — tokenized with the model's
/// tokenizer.json (and its chat template for <c>messages</c>).
/// </summary>
internal sealed class DataOptions
{
    public Option<string> Format { get; } = new("--format") { Description = "auto, text, prompt-completion, messages, tokenized, csv or tsv", DefaultValueFactory = _ => "auto" };

    public Option<string> TextColumn { get; } = new("--text-column") { Description = "CSV/TSV column with the text (or the prompt, with --completion-column)", DefaultValueFactory = _ => "text" };

    public Option<string?> CompletionColumn { get; } = new("--completion-column") { Description = "CSV/TSV column with the completion; rows become prompt + completion" };

    public Option<string?> ChatTemplate { get; } = new(Text.ChatTemplate.OptionName) { Description = $"chat format for messages rows: {string.Join(", ", Text.ChatTemplate.Names)} (default: detected from the model's tokenizer_config.json)" };

    public Option<bool> SkipBadRows { get; } = new("--skip-bad-rows") { Description = "skip and count bad rows instead of failing on the first" };

    public Option<bool> TrainOnPrompt { get; } = new("--train-on-prompt") { Description = "also compute the loss on prompt/user tokens (default: completion/assistant tokens only)" };

    public void AddTo(Command command)
    {
        foreach (var option in new Option[] { Format, TextColumn, CompletionColumn, ChatTemplate, SkipBadRows, TrainOnPrompt })
        {
            command.Options.Add(option);
        }
    }

    /// <summary>Reads <paramref name="path"/> into token rows; reports skipped rows on <paramref name="log"/>.</summary>
    public IReadOnlyList<TokenRow> Load(ParseResult parse, string path, string modelDirectory, int vocabSize, TextWriter log, CancellationToken cancellationToken = default)
    {
        var (tokenizer, options) = Prepare(parse, modelDirectory, vocabSize);
        var data = TextDataset.Load(path, tokenizer, options, cancellationToken: cancellationToken);
        if (data.Report.SkippedRows > 0)
        {
            log.WriteLine($"{path}: skipped {data.Report.SkippedRows} bad rows; first: {string.Join("; ", data.Report.SkipReasons)}");
        }

        return data;
    }

    /// <summary>A source that reads <paramref name="path"/> lazily each time it is called (for training on files larger than memory).</summary>
    public Func<IEnumerable<TokenRow>> Open(ParseResult parse, string path, string modelDirectory, int vocabSize)
    {
        var (tokenizer, options) = Prepare(parse, modelDirectory, vocabSize);
        return () => TextDataset.Open(path, tokenizer, options);
    }

    private (Tokenizer? Tokenizer, TextDatasetOptions Options) Prepare(ParseResult parse, string modelDirectory, int vocabSize)
    {
        var tokenizer = File.Exists(Path.Combine(modelDirectory, "tokenizer.json")) ? Tokenizer.Load(modelDirectory) : null;
        var options = new TextDatasetOptions
        {
            Format = ParseFormat(parse.GetValue(Format)!),
            TextColumn = parse.GetValue(TextColumn)!,
            CompletionColumn = parse.GetValue(CompletionColumn),
            ChatTemplate = ResolveTemplate(parse.GetValue(ChatTemplate), modelDirectory),
            SkipBadRows = parse.GetValue(SkipBadRows),
            TrainOnPrompt = parse.GetValue(TrainOnPrompt),
            VocabSize = vocabSize,
        };
        return (tokenizer, options);
    }

    /// <summary>The named template, else the one the model folder declares, else none (messages rows then fail naming the option).</summary>
    public static ChatTemplate? ResolveTemplate(string? name, string modelDirectory)
    {
        if (name is not null)
        {
            return Text.ChatTemplate.FromName(name);
        }

        bool declared = File.Exists(Path.Combine(modelDirectory, "chat_template.jinja")) || File.Exists(Path.Combine(modelDirectory, "tokenizer_config.json"));
        if (!declared)
        {
            return null;
        }

        try
        {
            return Text.ChatTemplate.Resolve(null, modelDirectory);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            return null;
        }
    }

    private static DatasetFormat ParseFormat(string text) => DatasetFormats.TryParse(text, out var format)
        ? format
        : throw new ArgumentException($"--format '{text}' is unknown: expected {string.Join(", ", DatasetFormats.Names)}");
}
