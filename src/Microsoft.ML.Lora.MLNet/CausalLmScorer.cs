using Microsoft.ML.Data;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>The generated-text column of a LoRA causal LM: for each row's prompt, the text generated after it.</summary>
internal sealed class CausalLmScorer : TextBatchScorer
{
    // Prompts per Generate call when a cursor runs over many rows: bounds the rows whose KV caches live at once.
    private const int PromptsPerBatch = 8;

    private readonly LoraCausalLmTransformer model;

    public CausalLmScorer(LoraCausalLmTransformer model)
        : base("prompt", model.Options.PromptColumn, PromptsPerBatch)
    {
        this.model = model;
        Outputs = [new DataViewSchema.DetachedColumn(model.Options.OutputColumn, TextDataViewType.Instance)];
    }

    /// <inheritdoc/>
    public override IReadOnlyList<DataViewSchema.DetachedColumn> Outputs { get; }

    /// <inheritdoc/>
    public override object[] Score(IReadOnlyList<string> texts) => [.. model.Generate(texts)];

    /// <inheritdoc/>
    public override Delegate MakeGetter(int output, Func<object> current) =>
        (ValueGetter<ReadOnlyMemory<char>>)((ref ReadOnlyMemory<char> value) => value = ((string)current()).AsMemory());
}
