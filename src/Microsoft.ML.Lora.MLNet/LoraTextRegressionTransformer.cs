using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// A LoRA text regressor in an ML.NET pipeline: Transform returns a lazy view that adds Score (Single, the
/// head's output at each row's last token, annotated so <c>mlContext.Regression.Evaluate</c> reads it),
/// scoring PredictionBatchSize rows per forward pass when cursored. Row-to-row, so <c>PredictionEngine</c>
/// works. Save with <see cref="LoraTransformerBase.SaveAdapter"/> and reload with <see cref="Load"/>; an ML.NET
/// model zip cannot hold it. Dispose it to free the model.
/// </summary>
public sealed class LoraTextRegressionTransformer : LoraTransformerBase
{
    private readonly SentenceText text;

    internal LoraTextRegressionTransformer(LlamaForCausalLM model, SentenceText text, StepSettings settings, LoraTrainingMetrics? metrics)
        : base(model, text.Tokenizer, settings, metrics)
    {
        this.text = text;
        var inputs = settings.InputColumns.Select((name, i) => (i == 0 ? "sentence" : "sentence2", name)).ToArray();
        Scorer = new RegressionScorer(inputs, settings.BatchSize, settings.OutputColumn, Predict);
    }

    /// <inheritdoc/>
    private protected override TextBatchScorer Scorer { get; }

    /// <summary>
    /// Loads a regressor saved by <see cref="LoraTransformerBase.SaveAdapter"/>: the base model (from the folder's
    /// settings, or <paramref name="modelPath"/>), the adapter and its one-output <c>score</c> head, and the columns.
    /// The device is the MLContext's (<c>GpuDeviceId</c>, else the CPU).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder lacks the adapter files.</exception>
    /// <exception cref="InvalidDataException">The adapter does not fit the base model, or its files are malformed.</exception>
    public static LoraTextRegressionTransformer Load(MLContext mlContext, string adapterDirectory, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterDirectory);
        var saved = StepSettings.Read(adapterDirectory, StepSettings.TextRegression);
        var settings = (saved ?? new StepSettings { Task = StepSettings.TextRegression, InputColumns = ["Sentence1"], OutputColumn = "Score" })
            with { ModelPath = StepModel.ModelPathOf(adapterDirectory, modelPath, saved) };
        using var host = new MLNetHost(MLNetHost.FromContext(mlContext), nameof(LoraTextRegressionTransformer));
        var backend = DeviceChoice.Resolve(null, null, host, "MLContext.GpuDeviceId");
        var text = new SentenceText(Tokenizer.Load(settings.ModelPath), settings.MaxSequenceLength);
        var model = StepModel.WithSavedAdapter(settings, adapterDirectory, backend, static (path, dtype) => LlamaForCausalLM.LoadForSequenceClassification(path, 1, dtype));
        return StepModel.Build(model, m => new LoraTextRegressionTransformer(m, text, settings, null));
    }

    /// <summary>The predicted value of each row, PredictionBatchSize rows per pass.</summary>
    internal float[] Predict(IReadOnlyList<string[]> rows)
    {
        var ids = rows.Select(r => text.Encode(r)).ToList();
        return Locked(model => SequenceRegression.Predict(model, ids, Settings.BatchSize, CancellationToken.None));
    }
}
