using System.Collections;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora;

/// <summary>One column of a <see cref="TextTable"/>: its name and element type.</summary>
/// <param name="Name">Column name (case-sensitive, as in ML.NET).</param>
/// <param name="Type">Element type: <see cref="string"/>, <see cref="int"/>, <see cref="float"/>, <c>float[]</c> or <c>IReadOnlyList&lt;ChatMessage&gt;</c>.</param>
public sealed record TextColumn(string Name, Type Type);

/// <summary>
/// The library's small stand-in for ML.NET's <c>IDataView</c>: an immutable, in-memory table of named,
/// typed columns of equal length. Build one with <see cref="FromColumns"/>, <see cref="FromRows{T}"/> or
/// <see cref="WithColumn{T}"/>; read a column with <see cref="GetColumn{T}"/>. Transformers return a new
/// table with their output columns added (a column of the same name is replaced, as ML.NET hides it).
/// </summary>
public sealed class TextTable
{
    /// <summary>The element types a column may have.</summary>
    public static IReadOnlyList<Type> SupportedTypes { get; } = [typeof(string), typeof(int), typeof(float), typeof(float[]), typeof(IReadOnlyList<ChatMessage>)];

    private readonly TextColumn[] schema;
    private readonly IList[] columns;

    private TextTable(TextColumn[] schema, IList[] columns, int rowCount)
    {
        this.schema = schema;
        this.columns = columns;
        RowCount = rowCount;
    }

    /// <summary>A table with no columns and no rows.</summary>
    public static TextTable Empty { get; } = new([], [], 0);

    /// <summary>Rows of the table (every column has this many values).</summary>
    public int RowCount { get; }

    /// <summary>The columns' names and types, in order.</summary>
    public IReadOnlyList<TextColumn> Schema => schema;

    /// <summary>
    /// A table from columns given as (name, values), e.g. <c>("Text", new[] { "a", "b" })</c>. The element type
    /// of each list (its <c>IReadOnlyList&lt;T&gt;</c>) must be one of <see cref="SupportedTypes"/>; values are copied.
    /// </summary>
    /// <exception cref="ArgumentException">Duplicate or empty names, unequal lengths, or an unsupported type; the message names the column.</exception>
    public static TextTable FromColumns(params (string Name, IList Values)[] columns)
    {
        ArgumentNullException.ThrowIfNull(columns);
        var table = Empty;
        foreach (var (name, values) in columns)
        {
            ArgumentNullException.ThrowIfNull(values, name);
            table = table.Add(name, ElementTypeOf(name, values.GetType()), values);
        }

        return table;
    }

    /// <summary>
    /// A table with one row per item: every public readable instance property of <typeparamref name="T"/>
    /// becomes a column of the property's name (as ML.NET's <c>LoadFromEnumerable</c> does with fields and properties).
    /// </summary>
    /// <exception cref="ArgumentException">A property of an unsupported type; the message names it.</exception>
    public static TextTable FromRows<T>(IEnumerable<T> rows)
    {
        ArgumentNullException.ThrowIfNull(rows);
        var items = rows.ToList();
        var table = Empty;
        foreach (var property in typeof(T).GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance))
        {
            if (!property.CanRead || property.GetIndexParameters().Length > 0)
            {
                continue;
            }

            var type = Normalize(property.PropertyType) ?? throw new ArgumentException(
                $"property '{typeof(T).Name}.{property.Name}' has type {property.PropertyType.Name}; a TextTable column holds one of {TypeList()}", nameof(rows));
            var values = Array.CreateInstance(type, items.Count);
            for (int i = 0; i < items.Count; i++)
            {
                values.SetValue(property.GetValue(items[i]), i);
            }

            table = table.Add(property.Name, type, values);
        }

        if (table.schema.Length == 0)
        {
            throw new ArgumentException($"type {typeof(T).Name} has no public readable property of a supported type ({TypeList()})", nameof(rows));
        }

        return table;
    }

    /// <summary>True when the table has a column named <paramref name="name"/>.</summary>
    public bool HasColumn(string name) => Array.FindIndex(schema, c => c.Name == name) >= 0;

    /// <summary>The values of column <paramref name="name"/>, whose type must be exactly <typeparamref name="T"/>.</summary>
    /// <exception cref="ArgumentException">No such column (the message lists the columns), or it holds another type (the message names both types).</exception>
    public IReadOnlyList<T> GetColumn<T>(string name)
    {
        int index = IndexOf(name);
        if (schema[index].Type != typeof(T))
        {
            throw new ArgumentException($"column '{name}' holds {TypeName(schema[index].Type)}, not {TypeName(typeof(T))}", nameof(name));
        }

        return (IReadOnlyList<T>)columns[index];
    }

    /// <summary>The type of column <paramref name="name"/>.</summary>
    /// <exception cref="ArgumentException">No such column; the message lists the columns.</exception>
    public Type GetColumnType(string name) => schema[IndexOf(name)].Type;

    /// <summary>
    /// A new table with column <paramref name="name"/> holding <paramref name="values"/> (copied); an existing
    /// column of that name is replaced. On an empty table the first column sets the row count.
    /// </summary>
    /// <exception cref="ArgumentException">The length differs from <see cref="RowCount"/>, or <typeparamref name="T"/> is not supported.</exception>
    public TextTable WithColumn<T>(string name, IReadOnlyList<T> values)
    {
        ArgumentNullException.ThrowIfNull(values);
        var type = Normalize(typeof(T)) ?? throw new ArgumentException($"column '{name}': type {TypeName(typeof(T))} is not supported; a TextTable column holds one of {TypeList()}", nameof(values));
        return Add(name, type, values as IList ?? values.ToArray());
    }

    /// <inheritdoc/>
    public override string ToString() => $"TextTable({RowCount} rows: {string.Join(", ", schema.Select(c => $"{c.Name} {TypeName(c.Type)}"))})";

    /// <summary>Readable type name for error messages.</summary>
    internal static string TypeName(Type type) =>
        type == typeof(IReadOnlyList<ChatMessage>) ? "IReadOnlyList<ChatMessage>" : type == typeof(float[]) ? "float[]" : type.Name;

    private TextTable Add(string name, Type type, IList values)
    {
        if (string.IsNullOrWhiteSpace(name))
        {
            throw new ArgumentException("a column name must not be empty", nameof(name));
        }

        int keep = Array.FindIndex(schema, c => c.Name == name);
        bool first = schema.Length == 0 || (schema.Length == 1 && keep == 0);
        if (!first && values.Count != RowCount)
        {
            throw new ArgumentException($"column '{name}' has {values.Count} values; the table has {RowCount} rows", nameof(values));
        }

        var copy = Array.CreateInstance(type, values.Count);
        for (int i = 0; i < values.Count; i++)
        {
            copy.SetValue(values[i], i);
        }

        var newSchema = schema.ToList();
        var newColumns = columns.ToList();
        if (keep >= 0)
        {
            newSchema[keep] = new TextColumn(name, type);
            newColumns[keep] = copy;
        }
        else
        {
            newSchema.Add(new TextColumn(name, type));
            newColumns.Add(copy);
        }

        return new TextTable([.. newSchema], [.. newColumns], values.Count);
    }

    private int IndexOf(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        int index = Array.FindIndex(schema, c => c.Name == name);
        if (index < 0)
        {
            string seen = schema.Length == 0 ? "none" : string.Join(", ", schema.Select(c => $"'{c.Name}' ({TypeName(c.Type)})"));
            throw new ArgumentException($"column '{name}' not found; the table's columns: {seen}", nameof(name));
        }

        return index;
    }

    private static Type ElementTypeOf(string name, Type listType)
    {
        var elementTypes = listType.GetInterfaces().Append(listType)
            .Where(static i => i.IsGenericType && i.GetGenericTypeDefinition() == typeof(IReadOnlyList<>))
            .Select(static i => i.GetGenericArguments()[0]);
        foreach (var element in elementTypes)
        {
            if (Normalize(element) is Type type)
            {
                return type;
            }
        }

        throw new ArgumentException($"column '{name}': {listType.Name} is not a list of a supported type; a TextTable column holds one of {TypeList()}", nameof(name));
    }

    // ChatMessage[] and List<ChatMessage> are stored as IReadOnlyList<ChatMessage>.
    private static Type? Normalize(Type type) =>
        SupportedTypes.Contains(type) ? type
        : typeof(IReadOnlyList<ChatMessage>).IsAssignableFrom(type) ? typeof(IReadOnlyList<ChatMessage>)
        : null;

    private static string TypeList() => string.Join(", ", SupportedTypes.Select(TypeName));
}
