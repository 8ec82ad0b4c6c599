using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>The generated-text column of a LoRA causal LM: for each row's prompt, the text generated after it.</summary>
/// <param name="prompt">The prompt column (role and name).</param>
/// <param name="outputColumn">Name of the generated-text column.</param>
/// <param name="batchSize">Prompts per generation call when a cursor runs over many rows (bounds the KV caches alive at once).</param>
/// <param name="generate">The continuation of each prompt.</param>
internal sealed class CausalLmScorer((string Kind, string Name) prompt, string outputColumn, int batchSize, Func<IReadOnlyList<string>, IReadOnlyList<string>> generate)
    : TextBatchScorer([prompt], batchSize)
{
    /// <inheritdoc/>
    public override IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; } = [new DataViewSchema.DetachedColumn(outputColumn, TextDataViewType.Instance)];

    /// <inheritdoc/>
    public override object[] Score(IReadOnlyList<string[]> rows) => [.. generate([.. rows.Select(static r => r[0])])];

    /// <inheritdoc/>
    public override Delegate MakeGetter(int output, Func<object> current) =>
        (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = ((string)current()).AsMemory());
}
