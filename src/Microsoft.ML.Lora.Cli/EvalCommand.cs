using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Cli;

/// <summary><c>lora eval</c>: mean token cross-entropy of a model folder on a tokenized JSONL file.</summary>
internal static class EvalCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new ModelOptions();
        var backendOptions = new BackendOptions();
        var dataOptions = new DataOptions();
        var data = new Option<string>("--data") { Description = "JSONL (input_ids, text, prompt/completion or messages) or CSV/TSV", Required = true };
        var batchSize = new Option<int>("--batch-size") { Description = "rows per batch", DefaultValueFactory = _ => 8 };
        var threads = new Option<int>("--threads") { Description = "CPU threads (default: all cores)", DefaultValueFactory = _ => Environment.ProcessorCount };
        var command = new Command("eval", "Print loss=<mean token cross-entropy> tokens=<count> of a model (optionally with an adapter, optionally NF4) on tokenized rows.") { data, batchSize, threads };
        model.AddTo(command);
        backendOptions.AddTo(command, withBf16Compute: true);
        dataOptions.AddTo(command);
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            int batch = parse.GetValue(batchSize);
            if (batch < 1)
            {
                throw new ArgumentException($"--batch-size must be at least 1; got {batch}");
            }

            var backend = backendOptions.Create(parse, parse.GetValue(threads));
            using var lm = model.Load(parse, backend);
            var rows = dataOptions.Load(parse, parse.GetValue(data)!, parse.GetValue(model.Model)!, lm.Config.VocabSize, error);
            var result = Evaluator.Evaluate(lm, rows, batch);
            if (result.Tokens == 0)
            {
                throw new InvalidDataException($"{parse.GetValue(data)}: no token to score (every label is -100 or every row has one token)");
            }

            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"loss={result.Mean:F6} tokens={result.Tokens}"));
            return 0;
        }));
        return command;
    }
}
