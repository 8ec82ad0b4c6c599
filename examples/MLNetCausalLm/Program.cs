// Supervised fine-tuning (SFT) of a causal LM with LoRA as a step of an ML.NET pipeline:
// mlContext.Transforms.Text.LoraCausalLm fits on String prompt/completion columns, Transform and a
// PredictionEngine generate, then the adapter is saved, merged and exported to ONNX.
//   dotnet run --project examples/MLNetCausalLm -p:MLNetAssemblies=DIR                         (a tiny model made on the spot)
//   dotnet run --project examples/MLNetCausalLm -p:MLNetAssemblies=DIR -- MODEL_DIR OUT_DIR   (a Hugging Face model folder)
// Microsoft.ML.Lora, its .Lora and .Training namespaces and the Shared/ helpers come as global usings (examples/Directory.Build.props).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Lora.Models;

var (output, modelPath) = ExampleFolders.FromArgs(args, "mlnet-causal-lm");

var ml = new MLContext(seed: 1);
IDataView data = ml.Data.LoadFromEnumerable(new[]
{
    new Pair { Prompt = "capital of France? ", Completion = "Paris" },
    new Pair { Prompt = "2+2=", Completion = "4" },
    new Pair { Prompt = "color of the sky? ", Completion = "blue" },
    new Pair { Prompt = "opposite of hot? ", Completion = "cold" },
    new Pair { Prompt = "dog says ", Completion = "woof" },
    new Pair { Prompt = "été → ", Completion = "summer" },
});
var options = new LoraCausalLmOptions
{
    ModelPath = modelPath,
    Lora = new LoraOptions { Rank = 8 },
    Training = new TrainingOptions { LearningRate = 1e-2, BatchSize = 6, MaxSteps = 120, WarmupSteps = 5, Seed = 1 },
    Generation = new GenerationOptions { MaxNewTokens = 16 },
};

using var sft = ml.Transforms.Text.LoraCausalLm(options, new ConsoleProgress()).Fit(data);
var generated = sft.Transform(data);
var prompts = generated.GetColumn<string>("Prompt").ToList();
var texts = generated.GetColumn<string>("GeneratedText").ToList();
for (int i = 0; i < prompts.Count; i++)
{
    Console.WriteLine($"{prompts[i]}→ {texts[i]}");
}

var engine = ml.Model.CreatePredictionEngine<Pair, Generation>(sft);
Console.WriteLine($"PredictionEngine: 'dog says ' → {engine.Predict(new Pair { Prompt = "dog says " }).GeneratedText}");

string adapter = Path.Combine(output, "adapter");
sft.SaveAdapter(adapter);
Console.WriteLine($"saved {adapter} ({string.Join(", ", Directory.GetFiles(adapter).Select(Path.GetFileName))})");

sft.Merge();
bool same = sft.Transform(data).GetColumn<string>("GeneratedText").SequenceEqual(texts);
Console.WriteLine($"merged into the base weights; generations identical: {same}");
string onnx = Path.Combine(output, "sft.onnx");
sft.ExportOnnx(onnx);
Console.WriteLine($"exported {onnx}: inputs input_ids, attention_mask; output logits [batch, sequence, vocab]");

/// <summary>One prompt and the completion to learn, as ML.NET reads them (String columns).</summary>
internal sealed class Pair
{
    public string Prompt { get; set; } = "";

    public string Completion { get; set; } = "";
}

/// <summary>What the transformer adds.</summary>
internal sealed class Generation
{
    public string GeneratedText { get; set; } = "";
}
