namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Errors about columns worded as ML.NET words them ("Could not find input column 'Text'",
/// "Schema mismatch for input column 'Text': expected String, got Single"), thrown as
/// <see cref="ArgumentOutOfRangeException"/> on the schema parameter as ML.NET's own components do.
/// </summary>
internal static class SchemaErrors
{
    public const string SchemaParameter = "inputSchema";

    /// <param name="kind">The column's role: "input", "label", "prompt", "completion".</param>
    /// <param name="name">The column name looked for.</param>
    public static ArgumentOutOfRangeException Missing(string kind, string name) =>
        new(SchemaParameter, $"Could not find {kind} column '{name}'");

    /// <param name="kind">The column's role: "input", "label", "prompt", "completion".</param>
    /// <param name="name">The column name.</param>
    /// <param name="expected">What the column must hold, e.g. "String" or "Key".</param>
    /// <param name="actual">The type seen, as ML.NET prints it.</param>
    public static ArgumentOutOfRangeException Mismatch(string kind, string name, string expected, string? actual) =>
        new(SchemaParameter, $"Schema mismatch for {kind} column '{name}': expected {expected}, got {actual}");
}
