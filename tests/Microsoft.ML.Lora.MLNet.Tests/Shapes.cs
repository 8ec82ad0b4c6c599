using System.Reflection;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// The SchemaShape of a data view's schema, as ML.NET's estimator chains compute it (SchemaShape.Create is
/// internal to ML.NET, so the tests reach it by reflection).
/// </summary>
internal static class Shapes
{
    public static SchemaShape Of(DataViewSchema schema) =>
        (SchemaShape)typeof(SchemaShape).GetMethod("Create", BindingFlags.Static | BindingFlags.NonPublic | BindingFlags.Public, [typeof(DataViewSchema)])!
            .Invoke(null, [schema])!;

    public static SchemaShape.Column Find(SchemaShape shape, string name) => shape.Single(c => c.Name == name);
}
