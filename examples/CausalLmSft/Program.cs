// Supervised fine-tuning (SFT) of a causal LM with LoRA as a step of an ML.NET pipeline, on the real TinyStories
// model the repository ships: mlContext.Transforms.Text.LoraCausalLm fits on String prompt/completion columns,
// Transform and a PredictionEngine generate, then the adapter is saved, reloaded, merged and exported to ONNX.
//   dotnet run --project examples/CausalLmSft                       (models/tinystories-656k)
//   dotnet run --project examples/CausalLmSft -- MODEL_DIR OUT_DIR  (any Hugging Face Llama-family folder)
// Microsoft.ML.Lora and the Shared/ helpers come as global usings (examples/Directory.Build.props).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Lora.MLNet;

var (output, modelPath) = ExampleFolders.FromArgs(args, "causal-lm-sft");

// Facts about a new character the stories never had. Completions start without a space: the model's
// SentencePiece-style tokenizer puts the word boundary in front of every piece it encodes.
Pair[] facts =
[
    new("Zog the dragon was", "purple and very kind."),
    new("Zog liked to eat", "green soup with a big spoon."),
    new("Zog lived in", "a tall tower by the sea."),
    new("Zog's best friend was", "a small red bird named Pip."),
];
var ml = new MLContext(seed: 1);
IDataView data = ml.Data.LoadFromEnumerable(facts);
var options = new LoraCausalLmTrainer.Options
{
    ModelPath = modelPath,
    LearningRate = 1e-2,
    MaxEpochs = 60,
    BatchSize = 4,
    MaxNewTokens = 16,
    Progress = new ConsoleProgress(),
};

using var sft = ml.Transforms.Text.LoraCausalLm(options).Fit(data);
var generated = sft.Transform(data);
foreach (var (prompt, text) in generated.GetColumn<string>("Prompt").Zip(generated.GetColumn<string>("GeneratedText")))
{
    Console.WriteLine($"{prompt} → {text}");
}

var engine = ml.Model.CreatePredictionEngine<Pair, Generation>(sft);
Console.WriteLine($"PredictionEngine: 'Zog the dragon was' → {engine.Predict(new Pair("Zog the dragon was", "")).GeneratedText}");

string adapter = Path.Combine(output, "adapter");
sft.SaveAdapter(adapter);
var texts = generated.GetColumn<string>("GeneratedText").ToList();
using (var loaded = LoraCausalLmTransformer.Load(ml, adapter))
{
    Console.WriteLine($"saved {adapter}; reloaded generations identical: {loaded.Transform(data).GetColumn<string>("GeneratedText").SequenceEqual(texts)}");
}

sft.Merge();
Console.WriteLine($"merged into the base weights; generations identical: {sft.Transform(data).GetColumn<string>("GeneratedText").SequenceEqual(texts)}");
string onnx = Path.Combine(output, "sft.onnx");
sft.ExportOnnx(onnx);
Console.WriteLine($"exported {onnx}: inputs input_ids, attention_mask; output logits [batch, sequence, vocab]");

/// <summary>One prompt and the completion to learn, as ML.NET reads them (String columns).</summary>
internal sealed record Pair(string Prompt, string Completion);

/// <summary>What the transformer adds.</summary>
internal sealed class Generation
{
    public string GeneratedText { get; set; } = "";
}
