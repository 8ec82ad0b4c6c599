using System.Reflection;
using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Makes <see cref="SchemaShape.Column"/> values for the columns an estimator adds. ML.NET keeps that
/// constructor internal (its own estimators are friends of the assembly), so an estimator outside ML.NET
/// has no public way to describe a new column; this calls the constructor by reflection, and says so
/// plainly if an ML.NET version no longer has it.
/// </summary>
internal static class ShapeColumns
{
    private static readonly ConstructorInfo? Constructor = typeof(SchemaShape.Column).GetConstructor(
        BindingFlags.Instance | BindingFlags.NonPublic | BindingFlags.Public, null,
        [typeof(string), typeof(SchemaShape.Column.VectorKind), typeof(DataViewType), typeof(bool), typeof(SchemaShape)], null);

    /// <summary>A column of the shape; <paramref name="itemType"/> is the raw type for keys (UInt32 for ML.NET's keys).</summary>
    public static SchemaShape.Column Create(string name, SchemaShape.Column.VectorKind kind, DataViewType itemType, bool isKey, IEnumerable<SchemaShape.Column>? annotations = null)
    {
        if (Constructor is null)
        {
            throw new NotSupportedException(
                $"this ML.NET version ({typeof(SchemaShape).Assembly.GetName().Version}) has no SchemaShape.Column(string, VectorKind, DataViewType, bool, SchemaShape) constructor; " +
                "GetOutputSchema cannot describe the added columns (Fit and Transform are unaffected)");
        }

        return (SchemaShape.Column)Constructor.Invoke([name, kind, itemType, isKey, new SchemaShape(annotations ?? [])]);
    }

    /// <summary>A scalar text column (e.g. ScoreColumnKind annotations and generated text).</summary>
    public static SchemaShape.Column ScalarText(string name) =>
        Create(name, SchemaShape.Column.VectorKind.Scalar, TextDataViewType.Instance, false);

    /// <summary>The input columns, less those named like an added column (ML.NET hides them), then the added columns.</summary>
    public static SchemaShape Append(SchemaShape input, params SchemaShape.Column[] added)
    {
        var names = added.Select(static c => c.Name).ToHashSet();
        return new SchemaShape(input.Where(c => !names.Contains(c.Name)).Concat(added));
    }
}
