using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// What the estimators of the LoRA pipeline steps (<see cref="LoraCausalLmEstimator"/>,
/// <see cref="LoraTextClassificationEstimator"/>) share: validated options, and a <see cref="Fit"/> that
/// checks the table's columns, loads the base model, attaches an adapter, trains it and returns the step's
/// transformer.
/// </summary>
/// <typeparam name="TOptions">The step's options.</typeparam>
/// <typeparam name="TTransformer">The transformer <see cref="Fit"/> returns.</typeparam>
public abstract class LoraEstimatorBase<TOptions, TTransformer>
    where TOptions : LoraFineTuningOptions
    where TTransformer : LoraTransformerBase
{
    private protected LoraEstimatorBase(TOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public TOptions Options { get; }

    /// <summary>
    /// Trains an adapter on <paramref name="data"/>. The table's columns are checked before the model is loaded.
    /// </summary>
    /// <param name="data">Training rows, in the columns the options name.</param>
    /// <param name="progress">Receives one report per optimizer step.</param>
    /// <param name="cancellationToken">Checked before every micro-batch; cancelling throws <see cref="OperationCanceledException"/> and frees the model.</param>
    /// <exception cref="ArgumentException">A missing column, a column of the wrong type, or a bad value; the message names the column and row.</exception>
    public abstract TTransformer Fit(TextTable data, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default);

    /// <summary>
    /// Attaches a new adapter (<see cref="LoraFineTuningOptions.Lora"/>, seeded by the training seed) to the
    /// freshly loaded <paramref name="model"/>, trains on <paramref name="rows"/> and makes the transformer;
    /// disposes the model when anything throws (cancellation included).
    /// </summary>
    private protected TTransformer Train(LlamaForCausalLM model, IReadOnlyList<TokenRow> rows, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken, Func<LlamaForCausalLM, TrainingResult, TTransformer> create) =>
        PipelineModel.Build(model, m =>
        {
            m.AddAdapter(Options.Lora, seed: Options.Training.Seed);
            TrainingResult result;
            using (var trainer = new Trainer(m, Options.Training))
            {
                result = trainer.Train(rows, validationRows: null, progress, cancellationToken);
            }

            return create(m, result);
        });
}
