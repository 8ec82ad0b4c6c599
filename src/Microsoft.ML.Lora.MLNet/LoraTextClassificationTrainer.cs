using Microsoft.ML.Data;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Fine-tunes a Llama-family model for text classification with LoRA or QLoRA, as a multiclass trainer of
/// an ML.NET pipeline (Hugging Face's <c>…ForSequenceClassification</c> shape: a <c>score</c> head on the
/// last token, trained fully, over a body adapted by LoRA). Fit reads the sentence column(s) (String) and the
/// key-typed label (<c>MapValueToKey</c>: key k is class k − 1); the transformer adds PredictedLabel (a key
/// with the label's KeyValues) and Score (the class probabilities). Made by
/// <c>mlContext.MulticlassClassification.Trainers.LoraTextClassification(…)</c>.
/// </summary>
public sealed class LoraTextClassificationTrainer : LoraTrainerBase<LoraTextClassificationTransformer>
{
    private readonly Options options;

    internal LoraTextClassificationTrainer(IHostEnvironment environment, Options options)
        : base(environment, options)
    {
        this.options = (Options)options.Snapshot();
    }

    /// <summary>Options of <see cref="LoraTextClassificationTrainer"/>; public fields with defaults, as ML.NET's trainer options.</summary>
    public sealed class Options : LoraSequenceTrainerOptions
    {
        /// <summary>The column the transformer adds with the predicted class (a key with the label's KeyValues). Default "PredictedLabel".</summary>
        public string PredictedLabelColumnName = "PredictedLabel";

        /// <inheritdoc/>
        internal override void Validate()
        {
            base.Validate();
            RequireText(nameof(PredictedLabelColumnName), PredictedLabelColumnName, "a column name");
            Require(PredictedLabelColumnName != ScoreColumnName, nameof(PredictedLabelColumnName), PredictedLabelColumnName, "a column other than ScoreColumnName");
        }
    }

    /// <summary>Reads the sentence and key-label columns through row cursors (once to count, once per epoch) and trains an adapter.</summary>
    private protected override LoraTextClassificationTransformer FitCore(IDataView input)
    {
        var o = options;
        var train = Rows(input);
        var validation = o.ValidationSet is null ? null : Rows(o.ValidationSet);
        if (validation is not null && validation.KeyCount != train.KeyCount)
        {
            throw SchemaErrors.Mismatch("label", o.LabelColumnName, $"Key with {train.KeyCount} values in the ValidationSet (as in the training data)", validation.LabelColumn!.Value.Type.ToString());
        }

        var annotations = train.LabelColumn!.Value.Annotations;
        var labels = new ClassificationLabels(train.KeyCount, ClassificationScorer.TextKeyValues(annotations));
        using var run = new FitRun(Environment, nameof(LoraTextClassificationTrainer), o);
        var text = new SentenceText(Tokenizer.Load(o.ModelPath), o.MaxSequenceLength);
        var open = run.Passes(truncated => train.Read(run.CheckCanceled).Select(r => SequenceClassification.TrainingRow(text.Encode(r.Texts, truncated), r.ClassIndex, (int)r.Position + 1)));
        var validationRows = validation?.Read(run.CheckCanceled).Select(r => SequenceClassification.TrainingRow(text.Encode(r.Texts), r.ClassIndex, (int)r.Position + 1)).ToList();
        run.CheckCanceled();
        var backend = run.ResolveBackend();
        var settings = Settings(o);
        var model = StepModel.LoadBase(settings.ModelPath, o.DType, o.Quantization, (path, dtype) => LlamaForCausalLM.LoadForSequenceClassification(path, labels.Count, dtype, labels.Names, run.Seed));
        return StepModel.Build(model, m =>
        {
            m.AddAdapter(o.ToLoraOptions(), seed: run.Seed);
            m.To(backend);
            TrainingResult result;
            using (var trainer = new Trainer(m, o.ToTrainingOptions(run.Seed)))
            {
                result = trainer.Train(open, validationRows, run.Progress, run.Token);
            }

            return new LoraTextClassificationTransformer(m, text, settings, labels, annotations, run.Metrics(result));
        });
    }

    /// <summary>PredictedLabel (key, with the label's KeyValues) and Score (vector of Single, annotated as a multiclass score), after checking the sentence and label columns.</summary>
    private protected override SchemaShape.Column[] OutputColumns(SchemaShape inputSchema)
    {
        foreach (var (kind, name) in SentenceColumns(options))
        {
            ColumnChecks.Text(inputSchema, kind, name);
        }

        var label = ColumnChecks.Key(inputSchema, "label", options.LabelColumnName);
        var keyValues = label.Annotations.FirstOrDefault(static a => a.Name == AnnotationNames.KeyValues);
        bool hasKeyValues = keyValues.Name is not null;
        var kinds = new[] { ShapeColumns.ScalarText(AnnotationNames.ScoreColumnKind), ShapeColumns.ScalarText(AnnotationNames.ScoreValueKind) };
        var predictedAnnotations = hasKeyValues ? kinds.Prepend(keyValues) : kinds;
        var scoreAnnotations = hasKeyValues && keyValues.ItemType is TextDataViewType
            ? kinds.Prepend(ShapeColumns.Create(AnnotationNames.SlotNames, SchemaShape.Column.VectorKind.Vector, TextDataViewType.Instance, false))
            : kinds;
        return
        [
            ShapeColumns.Create(options.PredictedLabelColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.UInt32, true, predictedAnnotations),
            ShapeColumns.Create(options.ScoreColumnName, SchemaShape.Column.VectorKind.Vector, NumberDataViewType.Single, false, scoreAnnotations),
        ];
    }

    /// <summary>The sentence columns with their roles in messages: "sentence", and "sentence2" for pairs.</summary>
    internal static (string Kind, string Name)[] SentenceColumns(LoraSequenceTrainerOptions options) =>
        options.Sentence2ColumnName is null ? [("sentence", options.Sentence1ColumnName)] : [("sentence", options.Sentence1ColumnName), ("sentence2", options.Sentence2ColumnName)];

    private DataViewRows Rows(IDataView data) =>
        new(data, SentenceColumns(options), ("label", options.LabelColumnName), LabelKind.Key);

    private static StepSettings Settings(Options o) => new()
    {
        Task = StepSettings.TextClassification,
        ModelPath = Path.GetFullPath(o.ModelPath),
        DType = o.DType,
        Quantization = o.Quantization,
        MaxSequenceLength = o.MaxSequenceLength,
        InputColumns = o.SentenceColumns,
        OutputColumn = o.ScoreColumnName,
        PredictedLabelColumn = o.PredictedLabelColumnName,
        BatchSize = o.PredictionBatchSize,
    };
}
