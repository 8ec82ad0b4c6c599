using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// The Score column of a LoRA text regressor: the predicted value (Single), annotated as ML.NET's regression
/// scorers annotate theirs (score column kind "Regression", value kind "Score"), which
/// <c>mlContext.Regression.Evaluate</c> reads.
/// </summary>
internal sealed class RegressionScorer : TextBatchScorer
{
    private readonly Func<IReadOnlyList<string[]>, float[]> predict;

    public RegressionScorer(IReadOnlyList<(string Kind, string Name)> inputs, int batchSize, string scoreColumn, Func<IReadOnlyList<string[]>, float[]> predict)
        : base(inputs, batchSize)
    {
        this.predict = predict;
        var annotations = new DataViewSchema.Annotations.Builder();
        annotations.Add(AnnotationNames.ScoreColumnKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> value) => value = AnnotationNames.Regression.AsMemory());
        annotations.Add(AnnotationNames.ScoreValueKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> value) => value = AnnotationNames.Score.AsMemory());
        Outputs = [new DataViewSchema.DetachedColumn(scoreColumn, NumberDataViewType.Single, annotations.ToAnnotations())];
    }

    /// <inheritdoc/>
    public override IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; }

    /// <inheritdoc/>
    public override object[] Score(IReadOnlyList<string[]> rows) => [.. predict(rows).Select(static v => (object)v)];

    /// <inheritdoc/>
    public override Delegate MakeGetter(int output, Func<object> current) =>
        (ValueGetter<float>)((ref float value) => value = (float)current());
}
