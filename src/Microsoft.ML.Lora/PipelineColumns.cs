using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora;

/// <summary>Reads the input columns of a pipeline step, with errors that name the column, the option that chose it and the row.</summary>
internal static class PipelineColumns
{
    /// <summary>Column <paramref name="name"/> as strings; every value must be non-empty.</summary>
    public static IReadOnlyList<string> Texts(TextTable data, string name, string option)
    {
        var values = Typed<string>(data, name, option);
        for (int i = 0; i < values.Count; i++)
        {
            if (string.IsNullOrEmpty(values[i]))
            {
                throw new ArgumentException($"column '{name}' ({option}), row {i}: the text is {(values[i] is null ? "null" : "empty")}; every row needs text");
            }
        }

        return values;
    }

    /// <summary>Column <paramref name="name"/> as conversations; every value must hold at least one message.</summary>
    public static IReadOnlyList<IReadOnlyList<ChatMessage>> Conversations(TextTable data, string name, string option)
    {
        var values = Typed<IReadOnlyList<ChatMessage>>(data, name, option);
        for (int i = 0; i < values.Count; i++)
        {
            if (values[i] is null || values[i].Count == 0)
            {
                throw new ArgumentException($"column '{name}' ({option}), row {i}: the conversation is {(values[i] is null ? "null" : "empty")}; every row needs at least one message");
            }
        }

        return values;
    }

    /// <summary>Column <paramref name="name"/>, which must exist and hold <typeparamref name="T"/>.</summary>
    public static IReadOnlyList<T> Typed<T>(TextTable data, string name, string option)
    {
        RequireColumn(data, name, option);
        var type = data.GetColumnType(name);
        if (type != typeof(T))
        {
            throw new ArgumentException($"column '{name}' ({option}) holds {TextTable.TypeName(type)}; expected {TextTable.TypeName(typeof(T))}", nameof(data));
        }

        return data.GetColumn<T>(name);
    }

    /// <summary>The type of column <paramref name="name"/>, which must exist.</summary>
    public static Type ColumnType(TextTable data, string name, string option)
    {
        RequireColumn(data, name, option);
        return data.GetColumnType(name);
    }

    /// <summary>Throws when the table has no rows.</summary>
    public static void RequireRows(TextTable data, string what)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (data.RowCount == 0)
        {
            throw new ArgumentException($"{what}: the table has no rows", nameof(data));
        }
    }

    private static void RequireColumn(TextTable data, string name, string option)
    {
        ArgumentNullException.ThrowIfNull(data);
        if (!data.HasColumn(name))
        {
            string seen = data.Schema.Count == 0 ? "none" : string.Join(", ", data.Schema.Select(c => $"'{c.Name}' ({TextTable.TypeName(c.Type)})"));
            throw new ArgumentException($"column '{name}' ({option}) not found; the table's columns: {seen}", nameof(data));
        }
    }
}
