using Microsoft.ML.Data;
namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// The lazy result of a binding transformer's Transform: the input's columns passed through, plus the
/// scorer's columns, computed in batches only when a cursor asks for them.
/// </summary>
internal sealed class ScoredDataView : IDataView
{
    private readonly IDataView input;
    private readonly TextBatchScorer scorer;

    public ScoredDataView(IDataView input, TextBatchScorer scorer)
    {
        ArgumentNullException.ThrowIfNull(input);
        this.input = input;
        this.scorer = scorer;
        Schema = scorer.OutputSchema(input.Schema);
    }

    /// <inheritdoc/>
    public DataViewSchema Schema { get; }

    /// <summary>False: the batch scorer reads rows in the input's order.</summary>
    public bool CanShuffle => false;

    /// <inheritdoc/>
    public long? GetRowCount() => input.GetRowCount();

    /// <inheritdoc/>
    public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
    {
        ArgumentNullException.ThrowIfNull(columnsNeeded);
        int inputCount = input.Schema.Count;
        var inputNeeded = new List<DataViewSchema.Column>();
        var outputActive = new bool[scorer.Outputs.Count];
        foreach (var column in columnsNeeded)
        {
            if (column.Index < inputCount)
            {
                inputNeeded.Add(input.Schema[column.Index]);
            }
            else
            {
                outputActive[column.Index - inputCount] = true;
            }
        }

        return new ScoredRowCursor(Schema, input, scorer, inputNeeded, outputActive);
    }

    /// <summary>One cursor: scoring is batched within it, and the row order must match the input's.</summary>
    public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
        [GetRowCursor(columnsNeeded, rand)];
}
