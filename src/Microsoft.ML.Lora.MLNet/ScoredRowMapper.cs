using Microsoft.ML.Data;
namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Row-to-row form of a binding transformer, which ML.NET's PredictionEngine (and a TransformerChain's
/// mapper) use: the outputs of one row are computed from its texts on first read and kept for that row.
/// </summary>
internal sealed class ScoredRowMapper : IRowToRowMapper
{
    private readonly TextBatchScorer scorer;

    public ScoredRowMapper(DataViewSchema inputSchema, TextBatchScorer scorer)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        InputSchema = inputSchema;
        this.scorer = scorer;
        OutputSchema = scorer.OutputSchema(inputSchema);
    }

    /// <inheritdoc/>
    public DataViewSchema InputSchema { get; }

    /// <inheritdoc/>
    public DataViewSchema OutputSchema { get; }

    /// <inheritdoc/>
    public IEnumerable<DataViewSchema.Column> GetDependencies(IEnumerable<DataViewSchema.Column> dependingColumns)
    {
        ArgumentNullException.ThrowIfNull(dependingColumns);
        var needed = new HashSet<int>();
        foreach (var column in dependingColumns)
        {
            if (column.Index < InputSchema.Count)
            {
                needed.Add(column.Index);
            }
            else
            {
                needed.UnionWith(scorer.InputColumns(InputSchema).Select(static c => c.Index));
            }
        }

        return needed.Order().Select(i => InputSchema[i]).ToArray();
    }

    /// <inheritdoc/>
    public DataViewRow GetRow(DataViewRow input, IEnumerable<DataViewSchema.Column> activeColumns)
    {
        ArgumentNullException.ThrowIfNull(input);
        ArgumentNullException.ThrowIfNull(activeColumns);
        return new Row(this, input, activeColumns.Select(static c => c.Index).ToHashSet());
    }

    private sealed class Row : DataViewRow
    {
        private readonly ScoredRowMapper mapper;
        private readonly DataViewRow input;
        private readonly HashSet<int> active;
        private readonly Delegate?[] getters;
        private ValueGetter<ReadOnlyMemory<char>>[]? texts;
        private long scoredPosition = -1;
        private object? result;

        public Row(ScoredRowMapper mapper, DataViewRow input, HashSet<int> active)
        {
            this.mapper = mapper;
            this.input = input;
            this.active = active;
            int inputCount = mapper.InputSchema.Count;
            getters = new Delegate?[mapper.scorer.Outputs.Count];
            for (int i = 0; i < getters.Length; i++)
            {
                if (active.Contains(inputCount + i))
                {
                    texts ??= [.. mapper.scorer.InputColumns(mapper.InputSchema).Select(c => input.GetGetter<ReadOnlyMemory<char>>(c))];
                    getters[i] = mapper.scorer.MakeGetter(i, Current);
                }
            }
        }

        public override DataViewSchema Schema => mapper.OutputSchema;

        public override long Position => input.Position;

        public override long Batch => input.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => input.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) =>
            column.Index < mapper.InputSchema.Count ? input.IsColumnActive(mapper.InputSchema[column.Index]) : active.Contains(column.Index);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column)
        {
            int inputCount = mapper.InputSchema.Count;
            if (column.Index < inputCount)
            {
                return input.GetGetter<TValue>(mapper.InputSchema[column.Index]);
            }

            var getter = getters[column.Index - inputCount]
                ?? throw new InvalidOperationException($"column '{column.Name}' was not requested when the row was made");
            return TextBatchScorer.Cast<TValue>(getter, column);
        }

        private object Current()
        {
            if (result is null || scoredPosition != input.Position)
            {
                ReadOnlyMemory<char> value = default;
                var row = new string[texts!.Length];
                for (int i = 0; i < row.Length; i++)
                {
                    texts[i](ref value);
                    row[i] = value.ToString();
                }

                result = mapper.scorer.ScoreRows([row], input.Position)[0];
                scoredPosition = input.Position;
            }

            return result;
        }
    }
}
