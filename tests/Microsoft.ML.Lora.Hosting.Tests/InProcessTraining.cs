using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>The same training the service runs, done directly with the library: the reference a job must reproduce.</summary>
internal static class InProcessTraining
{
    public static TextDataset Rows(string modelDir, string dataset) =>
        TextDataset.Load(dataset, Tokenizer.Load(modelDir), new TextDatasetOptions { VocabSize = LlamaConfig.Load(Path.Combine(modelDir, "config.json")).VocabSize });

    /// <summary>Trains an adapter, saves it to <paramref name="output"/>; returns the step losses and the trained model's mean loss on the rows.</summary>
    public static (IReadOnlyList<double> StepLosses, double Evaluation) Train(string modelDir, string dataset, LoraOptions lora, TrainingOptions training, string output)
    {
        using var model = LlamaForCausalLM.Load(modelDir);
        var rows = Rows(modelDir, dataset);
        model.AddAdapter(lora, seed: training.Seed);
        using var trainer = new Trainer(model, training);
        var result = trainer.Train(rows);
        model.SaveAdapter(output, baseModelNameOrPath: "tiny", options: lora);
        return (result.StepLosses, Evaluator.Evaluate(model, rows, batchSize: 4).Mean);
    }
}
