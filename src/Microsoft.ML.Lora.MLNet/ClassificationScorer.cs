using Microsoft.ML.Data;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// The columns of a LoRA text classifier in ML.NET's multiclass shape: PredictedLabel, a key of the label's
/// key count (key k = class k − 1) carrying the label's KeyValues so MapKeyToValue maps it back, and Score,
/// a vector of K class probabilities annotated as a multiclass score (with SlotNames when the classes have
/// text names) so <c>MulticlassClassification.Evaluate</c> reads it.
/// </summary>
internal sealed class ClassificationScorer : TextBatchScorer
{
    private readonly Func<IReadOnlyList<string[]>, float[][]> scores;
    private readonly int classes;

    /// <param name="inputs">The sentence columns (role and name).</param>
    /// <param name="batchSize">Rows scored together.</param>
    /// <param name="labels">The classes (count and names).</param>
    /// <param name="predictedLabelColumn">Name of the PredictedLabel column.</param>
    /// <param name="scoreColumn">Name of the Score column.</param>
    /// <param name="keyValues">The annotations of the training label column (its KeyValues are copied), or null to use the class names.</param>
    /// <param name="scores">Class probabilities of rows of texts.</param>
    public ClassificationScorer(
        IReadOnlyList<(string Kind, string Name)> inputs, int batchSize, ClassificationLabels labels, string predictedLabelColumn, string scoreColumn,
        DataViewSchema.Annotations? keyValues, Func<IReadOnlyList<string[]>, float[][]> scores)
        : base(inputs, batchSize)
    {
        this.scores = scores;
        classes = labels.Count;
        var labelAnnotations = keyValues is not null && HasKeyValues(keyValues, classes) ? keyValues : NamesAnnotation(labels.Names, classes);
        string[]? slotNames = labelAnnotations is null ? null : TextKeyValues(labelAnnotations);

        var predicted = new DataViewSchema.Annotations.Builder();
        if (labelAnnotations is not null)
        {
            predicted.Add(labelAnnotations, static name => name == AnnotationNames.KeyValues);
        }

        AddScoreKinds(predicted, AnnotationNames.PredictedLabel);

        var score = new DataViewSchema.Annotations.Builder();
        if (slotNames is not null)
        {
            score.Add(AnnotationNames.SlotNames, new VectorDataViewType(TextDataViewType.Instance, classes), (ref VBuffer<ReadOnlyMemory<char>> value) => value = TextVector(slotNames));
        }

        AddScoreKinds(score, AnnotationNames.Score);
        Outputs =
        [
            new DataViewSchema.DetachedColumn(predictedLabelColumn, new KeyDataViewType(typeof(uint), classes), predicted.ToAnnotations()),
            new DataViewSchema.DetachedColumn(scoreColumn, new VectorDataViewType(NumberDataViewType.Single, classes), score.ToAnnotations()),
        ];
    }

    /// <inheritdoc/>
    public override IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; }

    /// <summary>The label names a key column's KeyValues give as text, else null.</summary>
    public static string[]? TextKeyValues(DataViewSchema.Annotations annotations)
    {
        if (annotations.Schema.GetColumnOrNull(AnnotationNames.KeyValues) is not { Type: VectorDataViewType { ItemType: TextDataViewType } })
        {
            return null;
        }

        VBuffer<ReadOnlyMemory<char>> names = default;
        annotations.GetValue(AnnotationNames.KeyValues, ref names);
        return names.DenseValues().Select(static n => n.ToString()).ToArray();
    }

    /// <inheritdoc/>
    public override object[] Score(IReadOnlyList<string[]> rows) => scores(rows);

    /// <inheritdoc/>
    public override Delegate MakeGetter(int output, Func<object> current) => output switch
    {
        // Key k stands for class k − 1; ties go to the lowest class.
        0 => (ValueGetter<uint>)((ref uint value) => value = (uint)Sampler.ArgMax((float[])current()) + 1),
        _ => (ValueGetter<VBuffer<float>>)((ref VBuffer<float> value) =>
        {
            var scores = (float[])current();
            var editor = VBufferEditor.Create(ref value, scores.Length);
            scores.AsSpan().CopyTo(editor.Values);
            value = editor.Commit();
        }),
    };

    private static bool HasKeyValues(DataViewSchema.Annotations annotations, int classes) =>
        annotations.Schema.GetColumnOrNull(AnnotationNames.KeyValues) is { Type: VectorDataViewType vector } && vector.Size == classes;

    private static DataViewSchema.Annotations? NamesAnnotation(IReadOnlyList<string>? names, int classes)
    {
        if (names is null || names.Count != classes)
        {
            return null;
        }

        var builder = new DataViewSchema.Annotations.Builder();
        string[] copy = [.. names];
        builder.Add(AnnotationNames.KeyValues, new VectorDataViewType(TextDataViewType.Instance, classes), (ref VBuffer<ReadOnlyMemory<char>> value) => value = TextVector(copy));
        return builder.ToAnnotations();
    }

    private static void AddScoreKinds(DataViewSchema.Annotations.Builder builder, string valueKind)
    {
        builder.Add(AnnotationNames.ScoreColumnKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> value) => value = AnnotationNames.MulticlassClassification.AsMemory());
        builder.Add(AnnotationNames.ScoreValueKind, TextDataViewType.Instance, (ref ReadOnlyMemory<char> value) => value = valueKind.AsMemory());
    }

    private static VBuffer<ReadOnlyMemory<char>> TextVector(string[] values) =>
        new(values.Length, values.Select(static v => v.AsMemory()).ToArray());
}
