using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// ML.NET estimator for supervised fine-tuning (SFT) of a causal LM with LoRA or QLoRA. <see cref="LoraTrainerBase{TOptions, TTransformer}.Fit"/>
/// reads the prompt and completion text columns (<see cref="LoraCausalLmOptions.PromptColumn"/>,
/// <see cref="LoraCausalLmOptions.CompletionColumn"/>, String) and trains with <see cref="LoraCausalLmEstimator"/>;
/// the transformer adds <see cref="LoraCausalLmOptions.OutputColumn"/> (String), the text generated after each
/// prompt. Made by <c>mlContext.Transforms.Text.LoraCausalLm(options)</c>.
/// </summary>
public sealed class LoraCausalLmTrainer : LoraTrainerBase<LoraCausalLmOptions, LoraCausalLmPredictionTransformer>
{
    /// <summary>A trainer with <paramref name="options"/> (validated here).</summary>
    /// <param name="options">Model, adapter, training, generation and column options. MessagesColumn must be null: ML.NET has no column type for chat messages.</param>
    /// <param name="progress">Receives one report per optimizer step during Fit.</param>
    /// <param name="cancellationToken">Cancels Fit (between micro-batches).</param>
    /// <exception cref="ArgumentException">An invalid option, or MessagesColumn set; the message names it.</exception>
    public LoraCausalLmTrainer(LoraCausalLmOptions options, IProgress<TrainingProgress>? progress = null, CancellationToken cancellationToken = default)
        : base(options, progress, cancellationToken)
    {
        if (options.MessagesColumn is not null)
        {
            throw new ArgumentException(
                $"LoraCausalLmOptions.MessagesColumn is '{options.MessagesColumn}': an ML.NET data view has no column type for chat messages; " +
                "render each conversation to prompt/completion text (e.g. with the model's chat template) or use LoraCausalLmEstimator on a TextTable",
                nameof(options));
        }
    }

    /// <summary>Reads the prompt and completion columns in one row-cursor pass and trains an adapter on them.</summary>
    private protected override LoraCausalLmPredictionTransformer FitCore(IDataView input)
    {
        ColumnChecks.Text(input.Schema, "prompt", Options.PromptColumn);
        ColumnChecks.Text(input.Schema, "completion", Options.CompletionColumn);
        var (texts, _) = DataViewColumns.Read(input, [("prompt", Options.PromptColumn), ("completion", Options.CompletionColumn)], null, CancellationToken, out _);
        var table = TextTable.FromColumns((Options.PromptColumn, texts[0]), (Options.CompletionColumn, texts[1]));
        return new LoraCausalLmPredictionTransformer(new LoraCausalLmEstimator(Options).Fit(table, Progress, CancellationToken));
    }

    /// <summary>The generated-text column, after checking the prompt and completion columns.</summary>
    private protected override SchemaShape.Column[] OutputColumns(SchemaShape inputSchema)
    {
        ColumnChecks.Text(inputSchema, "prompt", Options.PromptColumn);
        ColumnChecks.Text(inputSchema, "completion", Options.CompletionColumn);
        return [ShapeColumns.ScalarText(Options.OutputColumn)];
    }
}
