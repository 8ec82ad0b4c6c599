using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>Reads whole columns of an <see cref="IDataView"/> through one row cursor (what Fit trains on).</summary>
internal static class DataViewColumns
{
    /// <summary>Every value of the text column <paramref name="name"/>; a missing (default) value reads as "".</summary>
    public static string[] ReadText(IDataView data, string kind, string name, CancellationToken ct)
    {
        var column = ColumnChecks.Text(data.Schema, kind, name);
        var values = new List<string>();
        using var cursor = data.GetRowCursor([column]);
        var getter = cursor.GetGetter<ReadOnlyMemory<char>>(column);
        ReadOnlyMemory<char> value = default;
        while (cursor.MoveNext())
        {
            ct.ThrowIfCancellationRequested();
            getter(ref value);
            values.Add(value.ToString());
        }

        return [.. values];
    }

    /// <summary>
    /// Every value of the key column <paramref name="name"/> as a 0-based class index: key value k is class
    /// k − 1. Key value 0 is ML.NET's missing key (e.g. a label MapValueToKey did not see when it was fitted)
    /// and is an error naming the row.
    /// </summary>
    public static int[] ReadKeyLabels(IDataView data, string kind, string name, CancellationToken ct, out int keyCount)
    {
        var column = ColumnChecks.Key(data.Schema, kind, name, out keyCount);
        var rawType = column.Type.RawType;
        using var cursor = data.GetRowCursor([column]);
        Func<ulong> read = rawType == typeof(uint) ? Reader<uint>(cursor, column, static v => v)
            : rawType == typeof(ulong) ? Reader<ulong>(cursor, column, static v => v)
            : rawType == typeof(ushort) ? Reader<ushort>(cursor, column, static v => v)
            : rawType == typeof(byte) ? Reader<byte>(cursor, column, static v => v)
            : throw SchemaErrors.Mismatch(kind, name, "Key", column.Type.ToString());
        var labels = new List<int>();
        while (cursor.MoveNext())
        {
            ct.ThrowIfCancellationRequested();
            ulong key = read();
            if (key == 0 || key > (ulong)keyCount)
            {
                throw new InvalidOperationException(
                    $"{kind} column '{name}', row {labels.Count}: key value {key} is {(key == 0 ? "ML.NET's missing key (a value the key mapping did not know)" : "past the key count")}; " +
                    $"every row needs a key in 1..{keyCount}. Drop such rows (e.g. FilterRowsByMissingValues) or fit MapValueToKey on data that has every label.");
            }

            labels.Add((int)(key - 1));
        }

        return [.. labels];
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
