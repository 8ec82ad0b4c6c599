namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Options of the trainers that put a <c>score</c> head on one or two sentences (Hugging Face's
/// <c>…ForSequenceClassification</c> shape): text classification and text regression. The head reads the
/// last token; a second sentence column makes each row a sentence pair.
/// </summary>
public abstract class LoraSequenceTrainerOptions : LoraTrainerOptions
{
    /// <summary>The label column: a key for classification (MapValueToKey), Single for regression. Default "Label".</summary>
    public string LabelColumnName = "Label";

    /// <summary>The (first) text column, String. Default "Sentence1", as ML.NET's TorchSharp text trainers.</summary>
    public string Sentence1ColumnName = "Sentence1";

    /// <summary>
    /// The second text column of sentence pairs, String; null (default) for single sentences. A pair is encoded
    /// as the two sentences each with the tokenizer's special tokens, one after the other: for Llama-family
    /// tokenizers (BOS + text) that is Hugging Face's pair template, BOS A BOS B. Too long a pair loses tokens
    /// from the end of the longer sentence first (Hugging Face's longest_first).
    /// </summary>
    public string? Sentence2ColumnName;

    /// <summary>The column the transformer adds with the score: class probabilities, or the predicted value. Default "Score".</summary>
    public string ScoreColumnName = "Score";

    /// <summary>Rows per forward pass when the transformer scores. Default 32.</summary>
    public int PredictionBatchSize = 32;

    /// <inheritdoc/>
    internal override void Validate()
    {
        base.Validate();
        RequireText(nameof(LabelColumnName), LabelColumnName, "a column name");
        RequireText(nameof(Sentence1ColumnName), Sentence1ColumnName, "a column name");
        RequireText(nameof(ScoreColumnName), ScoreColumnName, "a column name");
        Require(Sentence2ColumnName is null || !string.IsNullOrWhiteSpace(Sentence2ColumnName), nameof(Sentence2ColumnName), Sentence2ColumnName, "null (single sentences) or a column name");
        Require(Sentence2ColumnName != Sentence1ColumnName, nameof(Sentence2ColumnName), Sentence2ColumnName, $"a column other than Sentence1ColumnName");
        Require(LabelColumnName != Sentence1ColumnName && LabelColumnName != Sentence2ColumnName, nameof(LabelColumnName), LabelColumnName, "a column other than the sentence columns");
        Require(PredictionBatchSize >= 1, nameof(PredictionBatchSize), PredictionBatchSize, "at least 1");
    }

    /// <summary>The sentence columns: one, or two for pairs.</summary>
    internal string[] SentenceColumns => Sentence2ColumnName is null ? [Sentence1ColumnName] : [Sentence1ColumnName, Sentence2ColumnName];
}
