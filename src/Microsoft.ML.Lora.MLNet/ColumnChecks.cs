using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>Checks that the columns a binding reads exist with the types it reads, in a schema or a schema shape.</summary>
internal static class ColumnChecks
{
    /// <summary>The text column <paramref name="name"/> (ML.NET's String, i.e. <c>ReadOnlyMemory&lt;char&gt;</c>).</summary>
    public static DataViewSchema.Column Text(DataViewSchema schema, string kind, string name)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var column = schema.GetColumnOrNull(name) ?? throw SchemaErrors.Missing(kind, name);
        if (column.Type is not TextDataViewType)
        {
            throw SchemaErrors.Mismatch(kind, name, "String", column.Type.ToString());
        }

        return column;
    }

    /// <summary>The key-typed label column <paramref name="name"/> with a known key count (what MapValueToKey makes).</summary>
    public static DataViewSchema.Column Key(DataViewSchema schema, string kind, string name, out int keyCount)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var column = schema.GetColumnOrNull(name) ?? throw SchemaErrors.Missing(kind, name);
        if (column.Type is not KeyDataViewType key || key.Count == 0)
        {
            throw SchemaErrors.Mismatch(kind, name, "Key (use MapValueToKey to map label values to keys)", column.Type.ToString());
        }

        if (key.Count < 2 || key.Count > int.MaxValue)
        {
            throw SchemaErrors.Mismatch(kind, name, "Key with 2 or more values (a classifier needs two classes)", column.Type.ToString());
        }

        keyCount = (int)key.Count;
        return column;
    }

    /// <summary>The Single (float) column <paramref name="name"/>: a regression label.</summary>
    public static DataViewSchema.Column Single(DataViewSchema schema, string kind, string name)
    {
        ArgumentNullException.ThrowIfNull(schema);
        var column = schema.GetColumnOrNull(name) ?? throw SchemaErrors.Missing(kind, name);
        if (column.Type != NumberDataViewType.Single)
        {
            throw SchemaErrors.Mismatch(kind, name, "Single", column.Type.ToString());
        }

        return column;
    }

    /// <summary>The Single (float) scalar column <paramref name="name"/> of a schema shape.</summary>
    public static SchemaShape.Column Single(SchemaShape shape, string kind, string name)
    {
        var column = Find(shape, kind, name);
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.IsKey || column.ItemType != NumberDataViewType.Single)
        {
            throw SchemaErrors.Mismatch(kind, name, "Single", ShapeTypeName(column));
        }

        return column;
    }

    /// <summary>The text column <paramref name="name"/> of a schema shape.</summary>
    public static SchemaShape.Column Text(SchemaShape shape, string kind, string name)
    {
        var column = Find(shape, kind, name);
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || column.IsKey || column.ItemType is not TextDataViewType)
        {
            throw SchemaErrors.Mismatch(kind, name, "String", ShapeTypeName(column));
        }

        return column;
    }

    /// <summary>The key-typed scalar column <paramref name="name"/> of a schema shape.</summary>
    public static SchemaShape.Column Key(SchemaShape shape, string kind, string name)
    {
        var column = Find(shape, kind, name);
        if (column.Kind != SchemaShape.Column.VectorKind.Scalar || !column.IsKey)
        {
            throw SchemaErrors.Mismatch(kind, name, "Key (use MapValueToKey to map label values to keys)", ShapeTypeName(column));
        }

        return column;
    }

    private static SchemaShape.Column Find(SchemaShape shape, string kind, string name)
    {
        ArgumentNullException.ThrowIfNull(shape);
        foreach (var column in shape)
        {
            if (column.Name == name)
            {
                return column;
            }
        }

        throw SchemaErrors.Missing(kind, name);
    }

    // As ML.NET prints a shape's type: Key<UInt32>, Vector<Single>, VarVector<String>.
    private static string ShapeTypeName(SchemaShape.Column column)
    {
        string name = column.ItemType.ToString() ?? "?";
        if (column.IsKey)
        {
            name = $"Key<{name}>";
        }

        return column.Kind switch
        {
            SchemaShape.Column.VectorKind.Vector => $"Vector<{name}>",
            SchemaShape.Column.VectorKind.VariableVector => $"VarVector<{name}>",
            _ => name,
        };
    }
}
