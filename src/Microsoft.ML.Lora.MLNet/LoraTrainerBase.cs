using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What the ML.NET estimators of the LoRA steps (<see cref="LoraCausalLmTrainer"/>,
/// <see cref="LoraTextClassificationTrainer"/>) share: validated options, the progress and cancellation of
/// <see cref="Fit"/>, which reads the step's columns through a row cursor and trains with the plain
/// estimator, and <see cref="GetOutputSchema"/>, which checks those columns and appends the added ones.
/// </summary>
/// <typeparam name="TOptions">The step's options.</typeparam>
/// <typeparam name="TTransformer">The transformer <see cref="Fit"/> returns.</typeparam>
public abstract class LoraTrainerBase<TOptions, TTransformer> : IEstimator<TTransformer>
    where TOptions : LoraFineTuningOptions
    where TTransformer : class, ITransformer
{
    private protected LoraTrainerBase(TOptions options, IProgress<TrainingProgress>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Options = options;
        Progress = progress;
        CancellationToken = cancellationToken;
    }

    /// <summary>The options.</summary>
    public TOptions Options { get; }

    /// <summary>Receives one report per optimizer step during Fit.</summary>
    private protected IProgress<TrainingProgress>? Progress { get; }

    /// <summary>Cancels Fit (between micro-batches).</summary>
    private protected CancellationToken CancellationToken { get; }

    /// <summary>Reads the step's columns through a row cursor and trains an adapter on them.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or of the wrong type; the message names it (ML.NET's wording).</exception>
    /// <exception cref="InvalidOperationException">A row's label is the missing key (0); the message names the row.</exception>
    public TTransformer Fit(IDataView input)
    {
        ArgumentNullException.ThrowIfNull(input);
        return FitCore(input);
    }

    /// <summary>The input shape plus the added columns, after checking the columns Fit reads.</summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or of the wrong type; the message names it.</exception>
    public SchemaShape GetOutputSchema(SchemaShape inputSchema)
    {
        ArgumentNullException.ThrowIfNull(inputSchema);
        return ShapeColumns.Append(inputSchema, OutputColumns(inputSchema));
    }

    /// <summary>Fit of a non-null input.</summary>
    private protected abstract TTransformer FitCore(IDataView input);

    /// <summary>Checks the columns Fit reads in <paramref name="inputSchema"/> and describes the columns the transformer adds.</summary>
    private protected abstract SchemaShape.Column[] OutputColumns(SchemaShape inputSchema);
}
