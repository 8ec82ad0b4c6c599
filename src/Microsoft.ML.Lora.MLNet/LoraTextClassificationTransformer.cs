using Microsoft.ML.Data;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// A LoRA text classifier in an ML.NET pipeline: Transform returns a lazy view that adds PredictedLabel (a
/// key, k = class k − 1, carrying the label's KeyValues so <c>MapKeyToValue</c> maps it back) and Score (K
/// class probabilities, annotated so <c>mlContext.MulticlassClassification.Evaluate</c> reads them), scoring
/// PredictionBatchSize rows per forward pass when cursored. Row-to-row, so <c>PredictionEngine</c> works.
/// Save with <see cref="LoraTransformerBase.SaveAdapter"/> and reload with <see cref="Load"/>; an ML.NET model
/// zip cannot hold it. Dispose it to free the model.
/// </summary>
public sealed class LoraTextClassificationTransformer : LoraTransformerBase
{
    private readonly SentenceText text;
    private readonly ClassificationLabels labels;

    internal LoraTextClassificationTransformer(LlamaForCausalLM model, SentenceText text, StepSettings settings, ClassificationLabels labels, DataViewSchema.Annotations? labelAnnotations, LoraTrainingMetrics? metrics)
        : base(model, text.Tokenizer, settings, metrics)
    {
        this.text = text;
        this.labels = labels;
        var inputs = settings.InputColumns.Select((name, i) => (i == 0 ? "sentence" : "sentence2", name)).ToArray();
        Scorer = new ClassificationScorer(inputs, settings.BatchSize, labels, settings.PredictedLabelColumn!, settings.OutputColumn, labelAnnotations, PredictScores);
    }

    /// <summary>Number of classes K (the label's key count at Fit).</summary>
    public int NumLabels => labels.Count;

    /// <summary>Class names by class index (the label's text KeyValues at Fit), or null when the keys had no text values.</summary>
    public IReadOnlyList<string>? LabelNames => labels.Names;

    /// <inheritdoc/>
    private protected override TextBatchScorer Scorer { get; }

    /// <summary>
    /// Loads a classifier saved by <see cref="LoraTransformerBase.SaveAdapter"/>: the base model (from the folder's
    /// settings, or <paramref name="modelPath"/>), the adapter and <c>score</c> head, the class names (which become
    /// PredictedLabel's KeyValues) and the columns. A PEFT SEQ_CLS folder saved elsewhere loads too, with the
    /// default columns (Sentence1, Score, PredictedLabel) and K from its head. The device is the MLContext's
    /// (<c>GpuDeviceId</c>, else the CPU).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder lacks the adapter files.</exception>
    /// <exception cref="InvalidDataException">The adapter does not fit the base model, or its files are malformed; the message names file and key.</exception>
    public static LoraTextClassificationTransformer Load(MLContext mlContext, string adapterDirectory, string? modelPath = null)
    {
        ArgumentNullException.ThrowIfNull(mlContext);
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterDirectory);
        var saved = StepSettings.Read(adapterDirectory, StepSettings.TextClassification);
        var labels = ClassificationLabels.Read(adapterDirectory);
        var settings = (saved ?? new StepSettings { Task = StepSettings.TextClassification, InputColumns = ["Sentence1"], OutputColumn = "Score", PredictedLabelColumn = "PredictedLabel" })
            with { ModelPath = StepModel.ModelPathOf(adapterDirectory, modelPath, saved) };
        using var host = new MLNetHost(MLNetHost.FromContext(mlContext), nameof(LoraTextClassificationTransformer));
        var backend = DeviceChoice.Resolve(null, null, host, "MLContext.GpuDeviceId");
        var text = new SentenceText(Tokenizer.Load(settings.ModelPath), settings.MaxSequenceLength);
        var model = StepModel.WithSavedAdapter(settings, adapterDirectory, backend, (path, dtype) => LlamaForCausalLM.LoadForSequenceClassification(path, labels.Count, dtype, labels.Names));
        return StepModel.Build(model, m => new LoraTextClassificationTransformer(m, text, settings, labels, null, null));
    }

    /// <summary>Class probabilities [rows][K] (softmax of the logits at each row's last token), PredictionBatchSize rows per pass.</summary>
    internal float[][] PredictScores(IReadOnlyList<string[]> rows)
    {
        var logits = PredictLogits(rows);
        foreach (float[] row in logits)
        {
            Softmax(row);
        }

        return logits;
    }

    /// <summary>Class logits [rows][K] at each row's last token (what the exported ONNX model outputs).</summary>
    internal float[][] PredictLogits(IReadOnlyList<string[]> rows)
    {
        var ids = rows.Select(r => text.Encode(r)).ToList();
        return Locked(model => SequenceClassification.Logits(model, ids, Settings.BatchSize));
    }

    /// <summary>Token ids of a row as the classifier sees it (e.g. to feed an exported ONNX model).</summary>
    internal int[] Encode(params string[] sentences) => text.Encode(sentences);

    /// <summary><c>labels.json</c> (num_labels, id2label).</summary>
    private protected override IReadOnlyDictionary<string, string> AdapterFiles() =>
        new Dictionary<string, string> { [ClassificationLabels.FileName] = labels.ToJson() };

    // Max-subtracted, so large logits cannot overflow exp.
    private static void Softmax(float[] row)
    {
        float max = row.Max();
        double sum = 0;
        for (int i = 0; i < row.Length; i++)
        {
            sum += Math.Exp(row[i] - max);
        }

        for (int i = 0; i < row.Length; i++)
        {
            row[i] = (float)(Math.Exp(row[i] - max) / sum);
        }
    }
}
