using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// Text classification with LoRA or QLoRA, in ML.NET's estimator shape: <see cref="Fit"/> loads the base
/// model as a sequence classifier (a <c>score</c> head on the last token, Hugging Face's
/// <c>…ForSequenceClassification</c>), adapts the body with LoRA, trains the head fully, and returns a
/// <see cref="LoraTextClassificationTransformer"/> that predicts.
/// </summary>
/// <param name="options">The options, validated when the estimator is made (an invalid one throws <see cref="ArgumentException"/> naming it).</param>
public sealed class LoraTextClassificationEstimator(LoraTextClassificationOptions options) : LoraEstimatorBase<LoraTextClassificationOptions, LoraTextClassificationTransformer>(options)
{
    /// <summary>
    /// Trains on <paramref name="data"/>: TextColumn (string) and LabelColumn (int 0…K−1, or string class
    /// names). The columns are checked before the model is loaded; the loss is the cross-entropy of the
    /// class scores at each text's last token.
    /// </summary>
    /// <param name="data">Training rows.</param>
    /// <param name="progress">Receives one report per optimizer step.</param>
    /// <param name="cancellationToken">Checked before every micro-batch; cancelling throws <see cref="OperationCanceledException"/> and frees the model.</param>
    /// <exception cref="ArgumentException">A missing column, a column of the wrong type, an empty text or a label out of range; the message names the column and row.</exception>
    public override LoraTextClassificationTransformer Fit(TextTable data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        PipelineColumns.RequireRows(data, "LoraTextClassificationEstimator.Fit");
        var texts = PipelineColumns.Texts(data, Options.TextColumn, "LoraTextClassificationOptions.TextColumn");
        var (labels, indices) = ClassificationLabels.FromColumn(data, Options);
        var encoder = new ClassificationText(Tokenizer.Load(Options.ModelPath), Options);
        var rows = new List<TokenRow>(texts.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            rows.Add(SequenceClassification.TrainingRow(encoder.Encode(texts[i]), indices[i], i + 1));
        }

        var model = LoraTextClassificationTransformer.LoadBase(Options, labels);
        return Train(model, rows, progress, cancellationToken, (m, result) => new LoraTextClassificationTransformer(m, encoder, Options, labels, result));
    }
}
