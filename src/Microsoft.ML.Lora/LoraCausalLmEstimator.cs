using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// Supervised fine-tuning of a causal LM with LoRA or QLoRA, in ML.NET's estimator shape: <see cref="Fit"/>
/// loads the base model, attaches an adapter, trains it on the table's prompt/completion (or chat) rows and
/// returns a <see cref="LoraCausalLmTransformer"/> that generates text.
/// </summary>
/// <param name="options">The options, validated when the estimator is made (an invalid one throws <see cref="ArgumentException"/> naming it).</param>
public sealed class LoraCausalLmEstimator(LoraCausalLmOptions options) : LoraEstimatorBase<LoraCausalLmOptions, LoraCausalLmTransformer>(options)
{
    /// <summary>
    /// Trains an adapter on <paramref name="data"/>. The table's columns are checked before the model is
    /// loaded. Loss falls on the completion tokens and EOS (or the assistant turns), unless
    /// <see cref="LoraCausalLmOptions.TrainOnPrompt"/>.
    /// </summary>
    /// <param name="data">Training rows: PromptColumn and CompletionColumn (string), or MessagesColumn.</param>
    /// <param name="progress">Receives one report per optimizer step.</param>
    /// <param name="cancellationToken">Checked before every micro-batch; cancelling throws <see cref="OperationCanceledException"/> and frees the model.</param>
    /// <exception cref="ArgumentException">A missing column, a column of the wrong type, or an empty value; the message names the column and row.</exception>
    public override LoraCausalLmTransformer Fit(TextTable data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        CausalLmText.CheckTrainingColumns(data, Options);
        var text = new CausalLmText(Tokenizer.Load(Options.ModelPath), Options);
        var rows = text.TrainingRows(data, cancellationToken);
        return Train(PipelineModel.LoadBase(Options), rows, progress, cancellationToken, (model, result) => new LoraCausalLmTransformer(model, text, Options, result));
    }
}
