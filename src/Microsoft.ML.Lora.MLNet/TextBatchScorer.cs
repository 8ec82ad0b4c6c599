using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What a LoRA transformer adds to a row: output columns computed from its text columns (one, or two for
/// sentence pairs), in batches. <see cref="ScoredDataView"/> (cursoring) and <see cref="ScoredRowMapper"/>
/// (PredictionEngine) share it.
/// </summary>
internal abstract class TextBatchScorer
{
    protected TextBatchScorer(IReadOnlyList<(string Kind, string Name)> inputs, int batchSize)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(inputs.Count, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        Inputs = [.. inputs];
        BatchSize = batchSize;
    }

    /// <summary>The text columns read: role in error messages ("sentence", "prompt") and name.</summary>
    public IReadOnlyList<(string Kind, string Name)> Inputs { get; }

    /// <summary>Rows scored together when a cursor runs over many rows.</summary>
    public int BatchSize { get; }

    /// <summary>The added columns, in order.</summary>
    public abstract IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; }

    /// <summary>One result object per row (each row: one text per input column), in order.</summary>
    public abstract object[] Score(IReadOnlyList<string[]> rows);

    /// <summary>
    /// <see cref="Score"/> of the input rows <paramref name="firstRow"/>, <paramref name="firstRow"/> + 1, …, after
    /// checking that each has its texts: an empty (or missing) value is an error naming the column and the input
    /// row, as Fit refuses it.
    /// </summary>
    /// <exception cref="InvalidOperationException">A text is empty.</exception>
    public object[] ScoreRows(IReadOnlyList<string[]> rows, long firstRow)
    {
        for (int r = 0; r < rows.Count; r++)
        {
            for (int c = 0; c < Inputs.Count; c++)
            {
                if (string.IsNullOrEmpty(rows[r][c]))
                {
                    throw DataViewRows.EmptyText(Inputs[c], firstRow + r);
                }
            }
        }

        return Score(rows);
    }

    /// <summary>A <c>ValueGetter&lt;T&gt;</c> for output <paramref name="output"/> that reads the current row's result.</summary>
    public abstract Delegate MakeGetter(int output, Func<object> current);

    /// <summary>The input columns of <paramref name="schema"/>, checked (String).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or not String (ML.NET's wording).</exception>
    public DataViewSchema.Column[] InputColumns(DataViewSchema schema) =>
        [.. Inputs.Select(i => ColumnChecks.Text(schema, i.Kind, i.Name))];

    /// <summary>The input schema with the outputs appended (an input column of the same name is hidden, as ML.NET does).</summary>
    public DataViewSchema OutputSchema(DataViewSchema input)
    {
        InputColumns(input);
        var builder = new DataViewSchema.Builder();
        builder.AddColumns(input);
        builder.AddColumns(Outputs);
        return builder.ToSchema();
    }

    /// <summary>The typed getter, or ML.NET's error for a wrong <typeparamref name="TValue"/>.</summary>
    public static ValueGetter<TValue> Cast<TValue>(Delegate getter, DataViewSchema.Column column) =>
        getter as ValueGetter<TValue> ?? throw new InvalidOperationException(
            $"Invalid TValue in GetGetter for column '{column.Name}': '{typeof(TValue)}', expected type: '{column.Type.RawType}'.");
}
