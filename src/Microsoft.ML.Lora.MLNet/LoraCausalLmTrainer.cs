using Microsoft.ML.Data;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Supervised fine-tuning (SFT) of a causal LM with LoRA or QLoRA as a text transform of an ML.NET pipeline:
/// Fit reads the prompt and completion columns (String) and trains on the completion tokens and EOS (TRL's
/// completion-only loss); the transformer adds a String column with the text generated after each prompt.
/// Made by <c>mlContext.Transforms.Text.LoraCausalLm(…)</c> (ML.NET has no generation catalog).
/// </summary>
public sealed class LoraCausalLmTrainer : LoraTrainerBase<LoraCausalLmTransformer>
{
    private readonly Options options;

    internal LoraCausalLmTrainer(IHostEnvironment environment, Options options)
        : base(environment, options)
    {
        this.options = (Options)options.Snapshot();
    }

    /// <summary>Options of <see cref="LoraCausalLmTrainer"/>; public fields with defaults, as ML.NET's trainer options.</summary>
    public sealed class Options : LoraTrainerOptions
    {
        /// <summary>The prompt column (String). Default "Prompt".</summary>
        public string PromptColumnName = "Prompt";

        /// <summary>The completion column to learn (String); Fit only. Default "Completion".</summary>
        public string CompletionColumnName = "Completion";

        /// <summary>The column the transformer adds with the generated text (String). Default "GeneratedText".</summary>
        public string GeneratedTextColumnName = "GeneratedText";

        /// <summary>Train on the prompt tokens too. Default false: the loss falls on the completion and EOS only, as TRL's SFT.</summary>
        public bool TrainOnPrompt;

        /// <summary>Tokens the transformer generates at most per prompt (it stops earlier at EOS). Default 128.</summary>
        public int MaxNewTokens = 128;

        /// <summary>0 (default): greedy. Otherwise the logits are divided by it and sampled (seeded from the MLContext).</summary>
        public double Temperature;

        /// <summary>Sample among the k most likely tokens only; 0 (default) = no limit.</summary>
        public int TopK;

        /// <summary>Nucleus sampling threshold in (0, 1]; 1 (default) = off.</summary>
        public double TopP = 1;

        /// <summary>Prompts of equal token length generated together (one forward pass per token for all). Default 8.</summary>
        public int GenerationBatchSize = 8;

        /// <inheritdoc/>
        internal override void Validate()
        {
            base.Validate();
            RequireText(nameof(PromptColumnName), PromptColumnName, "a column name");
            RequireText(nameof(CompletionColumnName), CompletionColumnName, "a column name");
            RequireText(nameof(GeneratedTextColumnName), GeneratedTextColumnName, "a column name");
            Require(CompletionColumnName != PromptColumnName, nameof(CompletionColumnName), CompletionColumnName, "a column other than PromptColumnName");
            Require(MaxNewTokens >= 1, nameof(MaxNewTokens), MaxNewTokens, "at least 1");
            Require(double.IsFinite(Temperature) && Temperature >= 0, nameof(Temperature), Temperature, "≥ 0 (0 = greedy)");
            Require(TopK >= 0, nameof(TopK), TopK, "≥ 0 (0 = off)");
            Require(TopP is > 0 and <= 1, nameof(TopP), TopP, "in (0, 1]");
            Require(GenerationBatchSize >= 1, nameof(GenerationBatchSize), GenerationBatchSize, "at least 1");
        }
    }

    /// <summary>Reads the prompt and completion columns through row cursors (once to count, once per epoch) and trains an adapter.</summary>
    private protected override LoraCausalLmTransformer FitCore(IDataView input)
    {
        var o = options;
        var train = Rows(input);
        var validation = o.ValidationSet is null ? null : Rows(o.ValidationSet);
        using var run = new FitRun(Environment, nameof(LoraCausalLmTrainer), o);
        var text = new PromptText(Tokenizer.Load(o.ModelPath), o.TrainOnPrompt);
        var open = run.Passes(truncated => train.Read(run.CheckCanceled).Select(r => Row(text, r, o, truncated)));
        var validationRows = validation?.Read(run.CheckCanceled).Select(r => Row(text, r, o, null)).ToList();
        run.CheckCanceled();
        var backend = run.ResolveBackend();
        var settings = new StepSettings
        {
            Task = StepSettings.CausalLm,
            ModelPath = Path.GetFullPath(o.ModelPath),
            DType = o.DType,
            Quantization = o.Quantization,
            MaxSequenceLength = o.MaxSequenceLength,
            InputColumns = [o.PromptColumnName],
            OutputColumn = o.GeneratedTextColumnName,
            BatchSize = o.GenerationBatchSize,
            Generation = new GenerationSettings(o.MaxNewTokens, o.Temperature, o.TopK, o.TopP, run.Seed),
        };
        var model = StepModel.LoadBase(settings.ModelPath, o.DType, o.Quantization, static (path, dtype) => LlamaForCausalLM.Load(path, dtype));
        return StepModel.Build(model, m =>
        {
            m.AddAdapter(o.ToLoraOptions(), seed: run.Seed);
            m.To(backend);
            TrainingResult result;
            using (var trainer = new Trainer(m, o.ToTrainingOptions(run.Seed)))
            {
                result = trainer.Train(open, validationRows, run.Progress, run.Token);
            }

            return new LoraCausalLmTransformer(m, text, settings, run.Metrics(result));
        });
    }

    /// <summary>The generated-text column, after checking the prompt and completion columns.</summary>
    private protected override SchemaShape.Column[] OutputColumns(SchemaShape inputSchema)
    {
        ColumnChecks.Text(inputSchema, "prompt", options.PromptColumnName);
        ColumnChecks.Text(inputSchema, "completion", options.CompletionColumnName);
        return [ShapeColumns.ScalarText(options.GeneratedTextColumnName)];
    }

    private static TokenRow Row(PromptText text, SourceRow r, Options o, Action? truncated)
    {
        var row = text.TrainingRow(r.Texts[0], r.Texts[1], (int)r.Position + 1)
            ?? throw new InvalidOperationException($"completion column '{o.CompletionColumnName}', row {r.Position}: the completion encodes to no tokens; nothing to train on");
        if (row.InputIds.Length > o.MaxSequenceLength)
        {
            // The engine cuts it to its first MaxSequenceLength tokens; counted here for the metrics.
            truncated?.Invoke();
        }

        return row;
    }

    private DataViewRows Rows(IDataView data) =>
        new(data, [("prompt", options.PromptColumnName), ("completion", options.CompletionColumnName)], default, LabelKind.None);
}
