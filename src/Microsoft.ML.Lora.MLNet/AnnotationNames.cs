namespace Microsoft.ML.Lora.MLNet;

/// <summary>The annotation kinds ML.NET's scorers write and its evaluators and key mappings read (names are ML.NET's).</summary>
internal static class AnnotationNames
{
    public const string KeyValues = "KeyValues";
    public const string SlotNames = "SlotNames";
    public const string ScoreColumnKind = "ScoreColumnKind";
    public const string ScoreValueKind = "ScoreValueKind";
    public const string MulticlassClassification = "MulticlassClassification";
    public const string Regression = "Regression";
    public const string Score = "Score";
    public const string PredictedLabel = "PredictedLabel";
}
