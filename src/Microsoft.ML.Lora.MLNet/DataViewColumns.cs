using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Reads whole columns of an <see cref="IDataView"/> (what Fit trains on) in one pass of one row cursor, so
/// the values of a row stay together and an expensive upstream runs once.
/// </summary>
internal static class DataViewColumns
{
    /// <summary>
    /// Every value of the text columns <paramref name="texts"/> (a missing value reads as "") and, when
    /// <paramref name="label"/> is given, of that key column as 0-based class indices: key value k is class
    /// k − 1. Key value 0 is ML.NET's missing key (e.g. a label MapValueToKey did not see when it was fitted)
    /// and is an error naming the row.
    /// </summary>
    /// <param name="data">The rows.</param>
    /// <param name="texts">The text columns: role in error messages ("input", "prompt") and name.</param>
    /// <param name="label">The key-typed label column (role and name), or null.</param>
    /// <param name="cancellationToken">Checked before every row.</param>
    /// <param name="keyCount">The label's key count, or 0 without a label.</param>
    public static (string[][] Texts, int[] Labels) Read(
        IDataView data, IReadOnlyList<(string Kind, string Name)> texts, (string Kind, string Name)? label, CancellationToken cancellationToken, out int keyCount)
    {
        var textColumns = texts.Select(t => ColumnChecks.Text(data.Schema, t.Kind, t.Name)).ToArray();
        keyCount = 0;
        DataViewSchema.Column? labelColumn = label is var (kind, name) ? ColumnChecks.Key(data.Schema, kind, name, out keyCount) : null;
        using var cursor = data.GetRowCursor(labelColumn is { } l ? [.. textColumns, l] : textColumns);
        var getters = textColumns.Select(c => cursor.GetGetter<ReadOnlyMemory<char>>(c)).ToArray();
        Func<ulong>? readKey = labelColumn is { } key ? KeyReader(cursor, key, label!.Value.Kind) : null;
        var values = texts.Select(static _ => new List<string>()).ToArray();
        var labels = new List<int>();
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            cancellationToken.ThrowIfCancellationRequested();
            for (int i = 0; i < getters.Length; i++)
            {
                getters[i](ref value);
                values[i].Add(value.ToString());
            }

            if (readKey is not null)
            {
                ulong k = readKey();
                if (k == 0 || k > (ulong)keyCount)
                {
                    throw new InvalidOperationException(
                        $"{label!.Value.Kind} column '{label.Value.Name}', row {labels.Count}: key value {k} is {(k == 0 ? "ML.NET's missing key (a value the key mapping did not know)" : "past the key count")}; " +
                        $"every row needs a key in 1..{keyCount}. Drop such rows (e.g. FilterRowsByMissingValues) or fit MapValueToKey on data that has every label.");
                }

                labels.Add((int)(k - 1));
            }
        }

        return ([.. values.Select(static v => v.ToArray())], [.. labels]);
    }

    private static Func<ulong> KeyReader(DataViewRowCursor cursor, DataViewSchema.Column column, string kind)
    {
        var rawType = column.Type.RawType;
        return rawType == typeof(uint) ? Reader<uint>(cursor, column, static v => v)
            : rawType == typeof(ulong) ? Reader<ulong>(cursor, column, static v => v)
            : rawType == typeof(ushort) ? Reader<ushort>(cursor, column, static v => v)
            : rawType == typeof(byte) ? Reader<byte>(cursor, column, static v => v)
            : throw SchemaErrors.Mismatch(kind, column.Name, "Key", column.Type.ToString());
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
