using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// What the LoRA trainers share: validated options (copied when the trainer is made), the MLContext they
/// were made from, a <see cref="Fit"/> that reads the data view through row cursors and trains an adapter,
/// and a <see cref="GetOutputSchema"/> that checks the columns Fit reads and appends the added ones.
/// </summary>
/// <typeparam name="TTransformer">The transformer <see cref="Fit"/> returns.</typeparam>
public abstract class LoraTrainerBase<TTransformer> : IEstimator<TTransformer>
    where TTransformer : LoraTransformerBase
{
    private protected LoraTrainerBase(IHostEnvironment environment, LoraTrainerOptions options)
    {
        ArgumentNullException.ThrowIfNull(environment);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        Environment = environment;
    }

    /// <summary>The MLContext's environment (seed, log, cancellation, device settings).</summary>
    private protected IHostEnvironment Environment { get; }

    /// <summary>
    /// Trains an adapter on <paramref name="input"/>: the columns are checked first (ML.NET's wording), then the
    /// base model loads, and each epoch reads the rows once through a new cursor.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">A column is missing or of the wrong type; the message names it.</exception>
    /// <exception cref="InvalidOperationException">A row has an empty text or a missing label; the message names the column and the row.</exception>
    /// <exception cref="OperationCanceledException">Options.CancellationToken, or ML.NET's cancellation of the context, stopped Fit; nothing is kept.</exception>
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
