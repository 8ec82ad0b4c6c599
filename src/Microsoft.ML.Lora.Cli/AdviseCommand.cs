using System.CommandLine;
using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Cli;

/// <summary><c>lora advise</c>: LoRA settings for a model and a data set, with the reasons.</summary>
internal static class AdviseCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var model = new Option<string>("--model") { Description = "Hugging Face model folder (only config.json is read)", Required = true };
        var data = new Option<string>("--data") { Description = "tokenized JSONL training file", Required = true };
        var dpo = new Option<bool>("--dpo") { Description = "advise `lora dpo` on preference pairs (JSONL with prompt, chosen, rejected) instead of `lora train`" };
        var dataOptions = new DataOptions();
        var command = new Command("advise", "Recommend rank, alpha, learning rate, batch size and targets from the data size and model shape.") { model, data, dpo };
        dataOptions.AddTo(command);
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            var config = LlamaConfig.Load(Path.Combine(parse.GetValue(model)!, "config.json"));
            if (parse.GetValue(dpo))
            {
                string folder = parse.GetValue(model)!;
                var pairs = PreferenceDataset.Load(parse.GetValue(data)!, Text.Tokenizer.Load(folder), DataOptions.ResolveTemplate(parse.GetValue(dataOptions.ChatTemplate), folder));
                var preference = LoraAdvisor.AdvisePreference(config, pairs.Count);
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"data: {pairs.Count} preference pairs; model: {config.Architecture}, {config.NumHiddenLayers} layers, hidden {config.HiddenSize}"));
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"lora dpo --rank {preference.Rank} --alpha {preference.Alpha} --lr {preference.LearningRate:G2} --beta 0.1 --batch-size {preference.BatchSize} --epochs {preference.Epochs} --warmup-ratio {preference.WarmupRatio} --targets {preference.Targets}   ({preference.AdapterParameters:N0} adapter parameters)"));
                foreach (string reason in preference.Reasons)
                {
                    output.WriteLine("  - " + reason);
                }

                return 0;
            }

            var rows = dataOptions.Load(parse, parse.GetValue(data)!, parse.GetValue(model)!, config.VocabSize, error);
            long tokens = rows.Sum(static r => (long)CountTrained(r));
            var advice = LoraAdvisor.Advise(config, rows.Count, tokens);
            var inv = CultureInfo.InvariantCulture;
            output.WriteLine(string.Create(inv, $"data: {rows.Count} rows, {tokens} trained tokens; model: {config.Architecture}, {config.NumHiddenLayers} layers, hidden {config.HiddenSize}"));
            output.WriteLine(string.Create(inv, $"--rank {advice.Rank} --alpha {advice.Alpha} --lr {advice.LearningRate:G2} --batch-size {advice.BatchSize} --epochs {advice.Epochs} --warmup-ratio {advice.WarmupRatio} --schedule cosine --targets {advice.Targets}   ({advice.AdapterParameters:N0} adapter parameters)"));
            foreach (string reason in advice.Reasons)
            {
                output.WriteLine("  - " + reason);
            }

            return 0;
        }));
        return command;
    }

    // Positions t whose next-token label (t+1) is not ignored, as the loss counts them.
    private static int CountTrained(TokenRow row)
    {
        int[] labels = row.Labels ?? row.InputIds;
        int n = 0;
        for (int i = 1; i < labels.Length; i++)
        {
            n += labels[i] == Tensors.CrossEntropy.IgnoreIndex ? 0 : 1;
        }

        return n;
    }
}
