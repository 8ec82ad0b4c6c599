using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// The lazy view a binding transformer returns, driven by a recording scorer: nothing is scored until a cursor
/// reads an added column, rows are scored in batches in input order, and input columns pass through aligned.
/// </summary>
public sealed class ScoredDataViewTests
{
    private readonly MLContext ml = new(seed: 1);

    public sealed class Row
    {
        public string Text { get; set; } = "";

        public int Id { get; set; }
    }

    [Fact]
    public void TransformIsLazyAndCursorsScoreInBatchesInRowOrder()
    {
        var rows = Enumerable.Range(0, 10).Select(i => new Row { Text = "t" + new string('x', i), Id = 100 + i }).ToArray();
        var scorer = new RecordingScorer(batchSize: 4);
        var view = new ScoredDataView(ml.Data.LoadFromEnumerable(rows), scorer);

        Assert.Empty(scorer.Batches);
        Assert.Equal(["Text", "Id", "Length"], view.Schema.Select(c => c.Name));

        // Only input columns requested: the scorer is not called.
        Assert.Equal(rows.Select(r => r.Id), view.GetColumn<int>("Id"));
        Assert.Empty(scorer.Batches);

        var ids = new List<int>();
        var lengths = new List<int>();
        using (var cursor = view.GetRowCursor(view.Schema))
        {
            var id = cursor.GetGetter<int>(view.Schema["Id"]);
            var length = cursor.GetGetter<int>(view.Schema["Length"]);
            int idValue = 0, lengthValue = 0;
            while (cursor.MoveNext())
            {
                id(ref idValue);
                length(ref lengthValue);
                ids.Add(idValue);
                lengths.Add(lengthValue);
            }
        }

        // Texts of lengths 1..10: each row's output is its own text's, and its Id is its own.
        Assert.Equal([[.. rows[..4].Select(r => r.Text)], [.. rows[4..8].Select(r => r.Text)], [.. rows[8..].Select(r => r.Text)]], scorer.Batches);
        Assert.Equal(rows.Select(r => r.Id), ids);
        Assert.Equal(Enumerable.Range(1, 10), lengths);
    }

    [Fact]
    public void AnAddedColumnHidesAnInputColumnOfTheSameNameAndGettersCheckTheType()
    {
        var data = ml.Data.LoadFromEnumerable(new[] { new { Text = "abc", Length = 7f } });
        var view = new ScoredDataView(data, new RecordingScorer(batchSize: 2));

        Assert.Equal(["Text", "Length", "Length"], view.Schema.Select(c => c.Name));
        Assert.True(view.Schema[1].IsHidden);
        Assert.Equal([3], view.GetColumn<int>("Length"));

        using var cursor = view.GetRowCursor(view.Schema);
        var error = Assert.Throws<InvalidOperationException>(() => cursor.GetGetter<float>(view.Schema["Length"]));
        Assert.Contains("'Length'", error.Message);
    }

    [Fact]
    public void RowMapperScoresOneRowPerPositionForPredictionEngine()
    {
        var scorer = new RecordingScorer(batchSize: 4);
        var transformer = new MapperTransformer(scorer);
        var engine = ml.Model.CreatePredictionEngine<Row, LengthRow>(transformer);

        Assert.Equal(5, engine.Predict(new Row { Text = "hello" }).Length);
        Assert.Equal(2, engine.Predict(new Row { Text = "hi" }).Length);
        Assert.Equal([["hello"], ["hi"]], scorer.Batches);
    }

    public sealed class LengthRow
    {
        public int Length { get; set; }
    }

    /// <summary>Adds "Length" (Int32): each text's length; records every batch it is asked to score.</summary>
    private sealed class RecordingScorer(int batchSize) : TextBatchScorer([("sentence", "Text")], batchSize)
    {
        public List<string[]> Batches { get; } = [];

        public override IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; } = [new("Length", NumberDataViewType.Int32)];

        public override object[] Score(IReadOnlyList<string[]> rows)
        {
            Batches.Add([.. rows.Select(static r => r[0])]);
            return rows.Select(static r => (object)r[0].Length).ToArray();
        }

        public override Delegate MakeGetter(int output, Func<object> current) =>
            (ValueGetter<int>)((ref int value) => value = (int)current());
    }

    /// <summary>An ITransformer over the recording scorer, as the binding transformers wrap theirs.</summary>
    private sealed class MapperTransformer(TextBatchScorer scorer) : ITransformer
    {
        public bool IsRowToRowMapper => true;

        public DataViewSchema GetOutputSchema(DataViewSchema inputSchema) => scorer.OutputSchema(inputSchema);

        public IRowToRowMapper GetRowToRowMapper(DataViewSchema inputSchema) => new ScoredRowMapper(inputSchema, scorer);

        public IDataView Transform(IDataView input) => new ScoredDataView(input, scorer);

        void ICanSaveModel.Save(ModelSaveContext ctx) => throw new NotSupportedException();
    }
}
