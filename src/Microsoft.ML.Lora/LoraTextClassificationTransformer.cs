using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora;

/// <summary>
/// A sequence classifier with a trained LoRA adapter and <c>score</c> head, in ML.NET's transformer shape:
/// <see cref="Transform"/> adds the predicted class and the class probabilities of each row's text. It
/// also saves the adapter (PEFT layout, <c>task_type</c> SEQ_CLS, plus <c>labels.json</c>), loads it back,
/// merges it into the base weights and exports ONNX. Methods are serialized (one at a time); dispose it to
/// free the model.
/// </summary>
public sealed class LoraTextClassificationTransformer : LoraTransformerBase
{
    private readonly ClassificationText text;
    private readonly ClassificationLabels labels;

    internal LoraTextClassificationTransformer(LlamaForCausalLM model, ClassificationText text, LoraTextClassificationOptions options, ClassificationLabels labels, TrainingResult? trainingResult)
        : base(model, text.Tokenizer, options, trainingResult)
    {
        this.text = text;
        this.labels = labels;
        Options = options;
    }

    /// <summary>The options the step was built with.</summary>
    public LoraTextClassificationOptions Options { get; }

    /// <summary>Number of classes K: PredictedLabel is in 0…K−1 and Score has K entries.</summary>
    public int NumLabels => labels.Count;

    /// <summary>Class names by index when the labels were strings or <see cref="LoraTextClassificationOptions.LabelNames"/> was set; else null.</summary>
    public IReadOnlyList<string>? LabelNames => labels.Names;

    /// <summary>
    /// Loads the base model of <paramref name="options"/> (ModelPath, DType, Quantize) as a classifier and the
    /// adapter, head and classes saved by <see cref="LoraTransformerBase.SaveAdapter"/> in <paramref name="adapterDirectory"/>.
    /// NumLabels and LabelNames of the options may be left null; when set they must match the saved ones. A PEFT
    /// SEQ_CLS adapter folder saved elsewhere (no labels.json) loads too: K is the row count of its <c>score</c>
    /// head, and the class names are the options' LabelNames (or none).
    /// </summary>
    /// <exception cref="FileNotFoundException">The folder lacks the adapter files.</exception>
    /// <exception cref="InvalidDataException">The adapter does not fit the base model; the message names file and key.</exception>
    public static LoraTextClassificationTransformer Load(string adapterDirectory, LoraTextClassificationOptions options)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(adapterDirectory);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        var labels = ClassificationLabels.Read(adapterDirectory, options);
        var text = new ClassificationText(Tokenizer.Load(options.ModelPath), options);
        return PipelineModel.WithSavedAdapter(LoadBase(options, labels), adapterDirectory, model => new LoraTextClassificationTransformer(model, text, options, labels, null));
    }

    /// <summary>
    /// A new table: <paramref name="data"/> plus PredictedLabelColumn (int, the most probable class; the
    /// lowest index on a tie) and ScoreColumn (float[K], softmax probabilities) for each row's TextColumn.
    /// </summary>
    /// <exception cref="ArgumentException">The text column is missing, not string, or has an empty value; the message names it.</exception>
    public TextTable Transform(TextTable data, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(data);
        var scores = PredictScores(PipelineColumns.Texts(data, Options.TextColumn, "LoraTextClassificationOptions.TextColumn"), cancellationToken);
        var predicted = scores.Select(static s => Sampler.ArgMax(s)).ToArray();
        return data.WithColumn(Options.PredictedLabelColumn, predicted).WithColumn(Options.ScoreColumn, scores);
    }

    /// <summary>Class probabilities [texts][K] (softmax of the pooled logits), in batches of PredictionBatchSize.</summary>
    public float[][] PredictScores(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        var logits = PredictLogits(texts, cancellationToken);
        foreach (float[] row in logits)
        {
            Softmax(row);
        }

        return logits;
    }

    /// <summary>Class logits [texts][K] at each text's last token (what an exported ONNX model outputs), in batches of PredictionBatchSize.</summary>
    public float[][] PredictLogits(IReadOnlyList<string> texts, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var ids = new List<int[]>(texts.Count);
        for (int i = 0; i < texts.Count; i++)
        {
            ids.Add(text.Encode(string.IsNullOrEmpty(texts[i]) ? throw new ArgumentException($"text {i} is {(texts[i] is null ? "null" : "empty")}", nameof(texts)) : texts[i]));
        }

        return Locked(model => SequenceClassification.Logits(model, ids, Options.PredictionBatchSize, cancellationToken));
    }

    /// <summary>Token ids of <paramref name="input"/> as the classifier sees it (BOS added, truncated), e.g. to feed an exported ONNX model.</summary>
    public int[] Encode(string input) => text.Encode(input);

    /// <summary>The base model of <paramref name="options"/> as a classifier of <paramref name="labels"/>' classes (a new <c>score</c> head when the folder is a causal LM).</summary>
    internal static LlamaForCausalLM LoadBase(LoraTextClassificationOptions options, ClassificationLabels labels) =>
        PipelineModel.LoadBase(options, (path, dtype) => LlamaForCausalLM.LoadForSequenceClassification(path, labels.Count, dtype, labels.Names, options.Training.Seed));

    /// <summary><c>labels.json</c> (num_labels, id2label), saved next to the PEFT files (task_type SEQ_CLS, modules_to_save score).</summary>
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
