using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>One row as a trainer reads it: its position in the data view, its texts and its label.</summary>
/// <param name="Position">0-based row of the data view (for error messages).</param>
/// <param name="Texts">The text columns' values, in the order asked for; never empty.</param>
/// <param name="ClassIndex">A key label's class, key − 1 (0 without a key label).</param>
/// <param name="Value">A Single label's value (0 without one).</param>
internal readonly record struct SourceRow(long Position, string[] Texts, int ClassIndex, float Value);

/// <summary>The kind of label a trainer reads: none (causal LM), a key (classification) or a Single (regression).</summary>
internal enum LabelKind
{
    None,
    Key,
    Single,
}

/// <summary>
/// Reads the columns a trainer needs from an <see cref="IDataView"/> through a row cursor, one row at a time:
/// every call of <see cref="Read"/> opens a new cursor and nothing is kept between rows, so a pass over the
/// data holds one row's text at a time. The columns are checked when this is made, with ML.NET's wording.
/// </summary>
internal sealed class DataViewRows
{
    private readonly IDataView data;
    private readonly (string Kind, string Name)[] texts;
    private readonly DataViewSchema.Column[] textColumns;
    private readonly (string Kind, string Name) label;
    private readonly DataViewSchema.Column? labelColumn;
    private readonly LabelKind labelKind;

    /// <param name="data">The rows.</param>
    /// <param name="texts">The String columns: role in messages ("sentence1", "prompt", …) and name.</param>
    /// <param name="label">The label's role and name (ignored for <see cref="LabelKind.None"/>).</param>
    /// <param name="labelKind">What the label column must be.</param>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or of the wrong type (ML.NET's wording).</exception>
    public DataViewRows(IDataView data, IReadOnlyList<(string Kind, string Name)> texts, (string Kind, string Name) label, LabelKind labelKind)
    {
        ArgumentNullException.ThrowIfNull(data);
        this.data = data;
        this.texts = [.. texts];
        this.label = label;
        this.labelKind = labelKind;
        textColumns = [.. texts.Select(t => ColumnChecks.Text(data.Schema, t.Kind, t.Name))];
        if (labelKind == LabelKind.Key)
        {
            labelColumn = ColumnChecks.Key(data.Schema, label.Kind, label.Name, out int keyCount);
            KeyCount = keyCount;
        }
        else if (labelKind == LabelKind.Single)
        {
            labelColumn = ColumnChecks.Single(data.Schema, label.Kind, label.Name);
        }
    }

    /// <summary>The label's key count K (classes), or 0 without a key label.</summary>
    public int KeyCount { get; }

    /// <summary>The label column (for its annotations), or null.</summary>
    public DataViewSchema.Column? LabelColumn => labelColumn;

    /// <summary>
    /// The rows, read afresh through a new cursor. An empty (or missing) text, ML.NET's missing key (0) or a
    /// non-finite Single label is an error naming the column and the row.
    /// </summary>
    /// <param name="checkCanceled">Called before every row; throws to stop.</param>
    /// <exception cref="InvalidOperationException">A bad value; the message names the column and the row.</exception>
    public IEnumerable<SourceRow> Read(Action checkCanceled)
    {
        using var cursor = data.GetRowCursor(labelColumn is { } l ? [.. textColumns, l] : textColumns);
        var getters = textColumns.Select(c => cursor.GetGetter<ReadOnlyMemory<char>>(c)).ToArray();
        Func<ulong>? readKey = labelKind == LabelKind.Key ? KeyReader(cursor, labelColumn!.Value) : null;
        ValueGetter<float>? readSingle = labelKind == LabelKind.Single ? cursor.GetGetter<float>(labelColumn!.Value) : null;
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            checkCanceled();
            long row = cursor.Position;
            var values = new string[getters.Length];
            for (int i = 0; i < getters.Length; i++)
            {
                getters[i](ref value);
                values[i] = value.IsEmpty ? throw EmptyText(texts[i], row) : value.ToString();
            }

            value = default;
            int classIndex = 0;
            float single = 0;
            if (readKey is not null)
            {
                ulong k = readKey();
                if (k == 0 || k > (ulong)KeyCount)
                {
                    throw new InvalidOperationException(
                        $"{label.Kind} column '{label.Name}', row {row}: key value {k} is {(k == 0 ? "ML.NET's missing key (a value the key mapping did not know)" : "past the key count")}; " +
                        $"every row needs a key in 1..{KeyCount}. Drop such rows (e.g. FilterRowsByMissingValues) or fit MapValueToKey on data that has every label.");
                }

                classIndex = (int)(k - 1);
            }
            else if (readSingle is not null)
            {
                readSingle(ref single);
                if (!float.IsFinite(single))
                {
                    throw new InvalidOperationException(
                        $"{label.Kind} column '{label.Name}', row {row}: the label is {single}; regression needs a finite number in every row. Drop such rows first (e.g. FilterRowsByMissingValues).");
                }
            }

            yield return new SourceRow(row, values, classIndex, single);
        }
    }

    /// <summary>The error of an empty text, as the transformers raise it too.</summary>
    public static InvalidOperationException EmptyText((string Kind, string Name) column, long row) => new(
        $"{column.Kind} column '{column.Name}', row {row}: the text is empty (or missing); every row needs text. Filter such rows out first, e.g. with mlContext.Data.FilterByCustomPredicate.");

    private Func<ulong> KeyReader(DataViewRowCursor cursor, DataViewSchema.Column column)
    {
        var rawType = column.Type.RawType;
        return rawType == typeof(uint) ? Reader<uint>(cursor, column, static v => v)
            : rawType == typeof(ulong) ? Reader<ulong>(cursor, column, static v => v)
            : rawType == typeof(ushort) ? Reader<ushort>(cursor, column, static v => v)
            : rawType == typeof(byte) ? Reader<byte>(cursor, column, static v => v)
            : throw SchemaErrors.Mismatch(label.Kind, column.Name, "Key", column.Type.ToString());
    }

    private static Func<ulong> Reader<T>(DataViewRowCursor cursor, DataViewSchema.Column column, Func<T, ulong> widen)
    {
        var getter = cursor.GetGetter<T>(column);
        T value = default!;
        return () =>
        {
            getter(ref value);
            return widen(value);
        };
    }
}
