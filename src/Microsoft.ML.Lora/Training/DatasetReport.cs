namespace Microsoft.ML.Lora.Training;

/// <summary>What one pass over a data file found; updated while the rows are enumerated.</summary>
public sealed class DatasetReport
{
    private readonly List<string> skipReasons = [];
    private readonly int maxReasons;

    internal DatasetReport(int maxReasons)
    {
        this.maxReasons = maxReasons;
    }

    /// <summary>The format the rows were read as (resolved from <see cref="DatasetFormat.Auto"/> once the first row is seen).</summary>
    public DatasetFormat Format { get; internal set; }

    /// <summary>Rows produced so far.</summary>
    public int Rows { get; private set; }

    /// <summary>Bad rows skipped (only with <see cref="TextDatasetOptions.SkipBadRows"/>).</summary>
    public int SkippedRows { get; private set; }

    /// <summary>The first skipped rows' errors, each naming file and line (at most <see cref="TextDatasetOptions.MaxReportedBadRows"/>).</summary>
    public IReadOnlyList<string> SkipReasons => skipReasons;

    internal void AddRow() => Rows++;

    internal void AddSkipped(string reason)
    {
        SkippedRows++;
        if (skipReasons.Count < maxReasons)
        {
            skipReasons.Add(reason);
        }
    }

    /// <summary>One line for logs: rows, skipped rows and the first reason.</summary>
    public override string ToString() =>
        SkippedRows == 0 ? $"{Rows} rows ({Format})" : $"{Rows} rows ({Format}), {SkippedRows} bad rows skipped; first: {skipReasons.FirstOrDefault()}";
}
