using Microsoft.ML.Data;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Fine-tunes a Llama-family model for text regression with LoRA or QLoRA, as a regression trainer of an
/// ML.NET pipeline: Hugging Face's <c>…ForSequenceClassification</c> with <c>num_labels = 1</c> and
/// <c>problem_type = "regression"</c> (one output at the last token, mean squared error), e.g. a sentence
/// similarity score with two sentence columns. Fit reads the sentence column(s) (String) and the Single
/// label; the transformer adds Score (Single), which <c>mlContext.Regression.Evaluate</c> reads. Made by
/// <c>mlContext.Regression.Trainers.LoraTextRegression(…)</c>.
/// </summary>
public sealed class LoraTextRegressionTrainer : LoraTrainerBase<LoraTextRegressionTransformer>
{
    private readonly Options options;

    internal LoraTextRegressionTrainer(IHostEnvironment environment, Options options)
        : base(environment, options)
    {
        this.options = (Options)options.Snapshot();
    }

    /// <summary>Options of <see cref="LoraTextRegressionTrainer"/>; public fields with defaults, as ML.NET's trainer options.</summary>
    public sealed class Options : LoraSequenceTrainerOptions
    {
    }

    /// <summary>Reads the sentence and Single label columns through row cursors (once to count, once per epoch) and trains an adapter.</summary>
    private protected override LoraTextRegressionTransformer FitCore(IDataView input)
    {
        var o = options;
        var train = Rows(input);
        var validation = o.ValidationSet is null ? null : Rows(o.ValidationSet);
        using var run = new FitRun(Environment, nameof(LoraTextRegressionTrainer), o);
        var text = new SentenceText(Tokenizer.Load(o.ModelPath), o.MaxSequenceLength);
        var open = run.Passes(truncated => train.Read(run.CheckCanceled).Select(r => new RegressionRow(text.Encode(r.Texts, truncated), r.Value, (int)r.Position + 1)));
        var validationRows = validation?.Read(run.CheckCanceled).Select(r => new RegressionRow(text.Encode(r.Texts), r.Value, (int)r.Position + 1)).ToList();
        run.CheckCanceled();
        var backend = run.ResolveBackend();
        var settings = Settings(o);
        var model = StepModel.LoadBase(settings.ModelPath, o.DType, o.Quantization, (path, dtype) => LlamaForCausalLM.LoadForSequenceClassification(path, 1, dtype, null, run.Seed));
        return StepModel.Build(model, m =>
        {
            m.AddAdapter(o.ToLoraOptions(), seed: run.Seed);
            m.To(backend);
            var result = RegressionTraining.Train(m, o.ToTrainingOptions(run.Seed), open, validationRows, run.Progress, run.Token);
            return new LoraTextRegressionTransformer(m, text, settings, run.Metrics(result));
        });
    }

    /// <summary>Score (Single, annotated as a regression score), after checking the sentence and label columns.</summary>
    private protected override SchemaShape.Column[] OutputColumns(SchemaShape inputSchema)
    {
        foreach (var (kind, name) in LoraTextClassificationTrainer.SentenceColumns(options))
        {
            ColumnChecks.Text(inputSchema, kind, name);
        }

        ColumnChecks.Single(inputSchema, "label", options.LabelColumnName);
        var kinds = new[] { ShapeColumns.ScalarText(AnnotationNames.ScoreColumnKind), ShapeColumns.ScalarText(AnnotationNames.ScoreValueKind) };
        return [ShapeColumns.Create(options.ScoreColumnName, SchemaShape.Column.VectorKind.Scalar, NumberDataViewType.Single, false, kinds)];
    }

    private DataViewRows Rows(IDataView data) =>
        new(data, LoraTextClassificationTrainer.SentenceColumns(options), ("label", options.LabelColumnName), LabelKind.Single);

    private static StepSettings Settings(Options o) => new()
    {
        Task = StepSettings.TextRegression,
        ModelPath = Path.GetFullPath(o.ModelPath),
        DType = o.DType,
        Quantization = o.Quantization,
        MaxSequenceLength = o.MaxSequenceLength,
        InputColumns = o.SentenceColumns,
        OutputColumn = o.ScoreColumnName,
        BatchSize = o.PredictionBatchSize,
    };
}
