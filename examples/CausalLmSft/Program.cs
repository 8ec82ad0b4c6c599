// Supervised fine-tuning (SFT) of a causal LM with LoRA through the plain pipeline API: Fit trains on
// prompt/completion rows, Transform generates, then the adapter is saved, loaded back, merged and exported.
//   dotnet run --project examples/CausalLmSft              (a tiny model made on the spot)
//   dotnet run --project examples/CausalLmSft -- MODEL_DIR OUT_DIR   (a Hugging Face model folder)
// Microsoft.ML.Lora, its .Lora and .Training namespaces and the Shared/ helpers come as global usings (examples/Directory.Build.props).
using Microsoft.ML.Lora.Models;

var (output, modelPath) = ExampleFolders.FromArgs(args, "causal-lm-sft");

var data = TextTable.FromRows(new[]
{
    new Pair("capital of France? ", "Paris"),
    new Pair("2+2=", "4"),
    new Pair("color of the sky? ", "blue"),
    new Pair("opposite of hot? ", "cold"),
    new Pair("dog says ", "woof"),
    new Pair("été → ", "summer"),
});
var options = new LoraCausalLmOptions
{
    ModelPath = modelPath,
    Lora = new LoraOptions { Rank = 8 },
    Training = new TrainingOptions { LearningRate = 1e-2, BatchSize = 6, MaxSteps = 120, WarmupSteps = 5, Seed = 1 },
    Generation = new GenerationOptions { MaxNewTokens = 16 },
};

using var sft = new LoraCausalLmEstimator(options).Fit(data, new ConsoleProgress());
var generated = sft.Transform(data);
foreach (var (prompt, text) in data.GetColumn<string>("Prompt").Zip(generated.GetColumn<string>("GeneratedText")))
{
    Console.WriteLine($"{prompt}→ {text}");
}

string adapter = Path.Combine(output, "adapter");
sft.SaveAdapter(adapter);
using (var loaded = LoraCausalLmTransformer.Load(adapter, options))
{
    bool same = loaded.Transform(data).GetColumn<string>("GeneratedText").SequenceEqual(generated.GetColumn<string>("GeneratedText"));
    Console.WriteLine($"saved {adapter}; loaded generations identical: {same}");
}

sft.Merge();
bool mergedSame = sft.Transform(data).GetColumn<string>("GeneratedText").SequenceEqual(generated.GetColumn<string>("GeneratedText"));
Console.WriteLine($"merged into the base weights; generations identical: {mergedSame}");
string onnx = Path.Combine(output, "sft.onnx");
sft.ExportOnnx(onnx);
Console.WriteLine($"exported {onnx}: inputs input_ids, attention_mask; output logits [batch, sequence, vocab]");

/// <summary>One prompt and the completion to learn.</summary>
internal sealed record Pair(string Prompt, string Completion);
