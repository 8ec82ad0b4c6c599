using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What a binding transformer adds to a row: output columns computed from one text column, in batches.
/// <see cref="ScoredDataView"/> (cursoring) and <see cref="ScoredRowMapper"/> (PredictionEngine) share it.
/// </summary>
internal abstract class TextBatchScorer
{
    protected TextBatchScorer(string inputKind, string inputColumn, int batchSize)
    {
        ArgumentException.ThrowIfNullOrEmpty(inputColumn);
        ArgumentOutOfRangeException.ThrowIfLessThan(batchSize, 1);
        InputKind = inputKind;
        InputColumn = inputColumn;
        BatchSize = batchSize;
    }

    /// <summary>The input column's role in error messages ("input", "prompt").</summary>
    public string InputKind { get; }

    /// <summary>The text column read.</summary>
    public string InputColumn { get; }

    /// <summary>Rows scored together when a cursor runs over many rows.</summary>
    public int BatchSize { get; }

    /// <summary>The added columns, in order.</summary>
    public abstract IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; }

    /// <summary>One result object per text, in order.</summary>
    public abstract object[] Score(IReadOnlyList<string> texts);

    /// <summary>
    /// <see cref="Score"/> of the input rows <paramref name="firstRow"/>, <paramref name="firstRow"/> + 1, …, after
    /// checking that each has text: an empty (or missing) value is an error naming the column and the input row,
    /// as the plain transformers' Transform refuses it.
    /// </summary>
    /// <exception cref="InvalidOperationException">A text is empty.</exception>
    public object[] ScoreRows(IReadOnlyList<string> texts, long firstRow)
    {
        for (int i = 0; i < texts.Count; i++)
        {
            if (string.IsNullOrEmpty(texts[i]))
            {
                throw new InvalidOperationException(
                    $"{InputKind} column '{InputColumn}', row {firstRow + i}: the text is empty (or missing); every row needs text. Filter such rows out first, e.g. with mlContext.Data.FilterByCustomPredicate.");
            }
        }

        return Score(texts);
    }

    /// <summary>A <c>ValueGetter&lt;T&gt;</c> for output <paramref name="output"/> that reads the current row's result.</summary>
    public abstract Delegate MakeGetter(int output, Func<object> current);

    /// <summary>The input schema with the outputs appended (an input column of the same name is hidden, as ML.NET does).</summary>
    public DataViewSchema OutputSchema(DataViewSchema input)
    {
        ColumnChecks.Text(input, InputKind, InputColumn);
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
