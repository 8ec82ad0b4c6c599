using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>What a data file holds (CLI: <c>--format</c>).</summary>
public enum DatasetFormat
{
    /// <summary>
    /// By extension: <c>.csv</c> → <see cref="Csv"/>, <c>.tsv</c>/<c>.tab</c> → <see cref="Tsv"/>, anything
    /// else is JSONL whose kind is taken from the first row's keys: <c>messages</c> → <see cref="Messages"/>,
    /// <c>input_ids</c> → <see cref="Tokenized"/>, <c>prompt</c> and <c>completion</c> →
    /// <see cref="PromptCompletion"/>, <c>text</c> → <see cref="Text"/> (checked in that order).
    /// </summary>
    Auto,

    /// <summary>JSONL <c>{"text": "…"}</c>: every token is trained on.</summary>
    Text,

    /// <summary>JSONL <c>{"prompt": "…", "completion": "…"}</c>: loss on the completion only by default.</summary>
    PromptCompletion,

    /// <summary>JSONL <c>{"messages": [{"role": "user", "content": "…"}, …]}</c>, rendered by a chat template; loss on assistant replies by default.</summary>
    Messages,

    /// <summary>JSONL <c>{"input_ids": […], "labels": […]}</c> (labels optional, −100 = ignored), as <see cref="TokenRowReader"/> reads it.</summary>
    Tokenized,

    /// <summary>Comma-separated values with a header row (RFC 4180 quoting).</summary>
    Csv,

    /// <summary>Tab-separated values with a header row (the same quoting rules as CSV).</summary>
    Tsv,
}

/// <summary>
/// How <see cref="TextDataset"/> reads and tokenizes a data file. Immutable; <see cref="Validate"/> throws
/// <see cref="ArgumentException"/> naming the option.
/// </summary>
public sealed record TextDatasetOptions
{
    /// <summary>What the file holds. Default <see cref="DatasetFormat.Auto"/>.</summary>
    public DatasetFormat Format { get; init; } = DatasetFormat.Auto;

    /// <summary>JSONL field of <see cref="DatasetFormat.Text"/> rows. Default <c>"text"</c>.</summary>
    public string TextField { get; init; } = "text";

    /// <summary>JSONL prompt field. Default <c>"prompt"</c>.</summary>
    public string PromptField { get; init; } = "prompt";

    /// <summary>JSONL completion field. Default <c>"completion"</c>.</summary>
    public string CompletionField { get; init; } = "completion";

    /// <summary>JSONL field holding the message list. Default <c>"messages"</c>.</summary>
    public string MessagesField { get; init; } = "messages";

    /// <summary>CSV/TSV column with the text (the prompt when <see cref="CompletionColumn"/> is set). Default <c>"text"</c>.</summary>
    public string TextColumn { get; init; } = "text";

    /// <summary>
    /// CSV/TSV column used as the completion (e.g. a label column of a classification file). Default null:
    /// each row is plain text and every other column is ignored. When set, a row is
    /// prompt = <see cref="TextColumn"/>, completion = this column, exactly like a prompt/completion row.
    /// </summary>
    public string? CompletionColumn { get; init; }

    /// <summary>
    /// Train on prompt tokens too (system, user and template tokens of chats; prompts of prompt/completion
    /// rows). Default false: those labels are −100 and only completions / assistant replies are learned,
    /// as TRL's completion-only loss does.
    /// </summary>
    public bool TrainOnPrompt { get; init; }

    /// <summary>
    /// Append the tokenizer's EOS after text rows and completions (unless the tokens already end with it),
    /// so the model learns to stop. Default true. Chat rows ignore it: each template ends every turn with
    /// its own marker (<c>&lt;|im_end|&gt;</c>, <c>&lt;|eot_id|&gt;</c>, <c>&lt;/s&gt;</c>).
    /// </summary>
    public bool AppendEos { get; init; } = true;

    /// <summary>Template for <see cref="DatasetFormat.Messages"/> rows; required when the file has them. Default null.</summary>
    public ChatTemplate? ChatTemplate { get; init; }

    /// <summary>
    /// Skip bad rows instead of throwing, counting them in <see cref="DatasetReport"/>. Default false: the
    /// first bad row throws <see cref="InvalidDataException"/> with file and line. Problems with the file as
    /// a whole (a missing CSV column, no chat template, no rows) always throw.
    /// </summary>
    public bool SkipBadRows { get; init; }

    /// <summary>How many skip reasons <see cref="DatasetReport.SkipReasons"/> keeps. Default 10.</summary>
    public int MaxReportedBadRows { get; init; } = 10;

    /// <summary>When set, ids of <see cref="DatasetFormat.Tokenized"/> rows must be below it. Default null.</summary>
    public int? VocabSize { get; init; }

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid option.</summary>
    public void Validate()
    {
        if (!Enum.IsDefined(Format))
        {
            throw new ArgumentException($"TextDatasetOptions.Format = {Format} is not a DatasetFormat", nameof(Format));
        }

        RequireName(TextField, nameof(TextField));
        RequireName(PromptField, nameof(PromptField));
        RequireName(CompletionField, nameof(CompletionField));
        RequireName(MessagesField, nameof(MessagesField));
        RequireName(TextColumn, nameof(TextColumn));
        if (CompletionColumn is not null)
        {
            RequireName(CompletionColumn, nameof(CompletionColumn));
            if (CompletionColumn == TextColumn)
            {
                throw new ArgumentException($"TextDatasetOptions.CompletionColumn and TextColumn are both '{TextColumn}'; the completion needs its own column", nameof(CompletionColumn));
            }
        }

        if (MaxReportedBadRows < 0)
        {
            throw new ArgumentException($"TextDatasetOptions.MaxReportedBadRows = {MaxReportedBadRows}; expected 0 or more", nameof(MaxReportedBadRows));
        }

        if (VocabSize is < 1)
        {
            throw new ArgumentException($"TextDatasetOptions.VocabSize = {VocabSize}; expected at least 1", nameof(VocabSize));
        }
    }

    private static void RequireName(string value, string option)
    {
        if (string.IsNullOrEmpty(value))
        {
            throw new ArgumentException($"TextDatasetOptions.{option} is empty; expected a field or column name", option);
        }
    }
}
