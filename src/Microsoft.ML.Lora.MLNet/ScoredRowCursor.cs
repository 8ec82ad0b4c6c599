using Microsoft.ML.Data;
namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Cursor of a <see cref="ScoredDataView"/>. A second cursor over the input, holding only the text columns,
/// runs ahead to gather a batch of texts; the main cursor delivers the passed-through columns of the current
/// row, whose outputs are the batch's results in order.
/// </summary>
internal sealed class ScoredRowCursor : DataViewRowCursor
{
    private readonly DataViewSchema inputSchema;
    private readonly TextBatchScorer scorer;
    private readonly DataViewRowCursor main;
    private readonly DataViewRowCursor? ahead;
    private readonly ValueGetter<ReadOnlyMemory<char>>[] aheadTexts = [];
    private readonly bool[] outputActive;
    private readonly Delegate?[] outputGetters;
    private object[] results = [];
    private int index = -1;

    public ScoredRowCursor(DataViewSchema schema, IDataView input, TextBatchScorer scorer, IReadOnlyList<DataViewSchema.Column> inputNeeded, bool[] outputActive)
    {
        Schema = schema;
        inputSchema = input.Schema;
        this.scorer = scorer;
        this.outputActive = outputActive;
        main = input.GetRowCursor(inputNeeded);
        outputGetters = new Delegate?[outputActive.Length];
        if (outputActive.Any(static a => a))
        {
            var texts = scorer.InputColumns(inputSchema);
            ahead = input.GetRowCursor(texts);
            aheadTexts = [.. texts.Select(t => ahead.GetGetter<ReadOnlyMemory<char>>(t))];
            for (int i = 0; i < outputActive.Length; i++)
            {
                outputGetters[i] = outputActive[i] ? scorer.MakeGetter(i, Current) : null;
            }
        }
    }

    /// <inheritdoc/>
    public override DataViewSchema Schema { get; }

    /// <inheritdoc/>
    public override long Position => main.Position;

    /// <inheritdoc/>
    public override long Batch => main.Batch;

    /// <inheritdoc/>
    public override ValueGetter<DataViewRowId> GetIdGetter() => main.GetIdGetter();

    /// <inheritdoc/>
    public override bool IsColumnActive(DataViewSchema.Column column) =>
        column.Index < inputSchema.Count ? main.IsColumnActive(inputSchema[column.Index]) : outputActive[column.Index - inputSchema.Count];

    /// <inheritdoc/>
    public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
    {
        if (column.Index < inputSchema.Count)
        {
            return main.GetGetter<TValue>(inputSchema[column.Index]);
        }

        var getter = outputGetters[column.Index - inputSchema.Count]
            ?? throw new InvalidOperationException($"column '{column.Name}' was not requested when the cursor was made");
        return TextBatchScorer.Cast<TValue>(getter, column);
    }

    /// <inheritdoc/>
    public override bool MoveNext()
    {
        if (!main.MoveNext())
        {
            return false;
        }

        if (ahead is not null && ++index >= results.Length)
        {
            FillBatch();
        }

        return true;
    }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            main.Dispose();
            ahead?.Dispose();
        }

        base.Dispose(disposing);
    }

    private void FillBatch()
    {
        var texts = new List<string[]>(scorer.BatchSize);
        ReadOnlyMemory<char> text = default;
        while (texts.Count < scorer.BatchSize && ahead!.MoveNext())
        {
            var row = new string[aheadTexts.Length];
            for (int i = 0; i < row.Length; i++)
            {
                aheadTexts[i](ref text);
                row[i] = text.ToString();
            }

            texts.Add(row);
        }

        if (texts.Count == 0)
        {
            throw new InvalidOperationException(
                $"the input data view gave a second cursor fewer rows than the first (column '{scorer.Inputs[0].Name}'); the input must give the same rows to every cursor");
        }

        // The main cursor has just moved to the batch's first row.
        results = scorer.ScoreRows(texts, main.Position);
        index = 0;
    }

    private object Current()
    {
        if (Position < 0)
        {
            throw new InvalidOperationException("no current row: call MoveNext first, and read values only while it returns true");
        }

        return results[index];
    }
}
