// Fine-tunes a text classifier with LoRA through the plain pipeline API: Fit trains, Transform predicts,
// then the adapter is saved, loaded back, exported to ONNX and merged.
//   dotnet run --project examples/TextClassification              (a tiny model made on the spot)
//   dotnet run --project examples/TextClassification -- MODEL_DIR OUT_DIR   (a Hugging Face model folder)
// Microsoft.ML.Lora, its .Lora and .Training namespaces and the Shared/ helpers come as global usings (examples/Directory.Build.props).

var (output, modelPath) = ExampleFolders.FromArgs(args, "text-classification");

// A small topic task: the class is the topic of one keyword among filler words.
string[][] keywords = [["cat", "dog", "cow", "hen"], ["car", "bus", "van", "jet"]];
string[] names = ["animal", "vehicle"];
string[] filler = ["the", "a", "one", "big", "old", "new", "my", "his", "so", "it", "is", "on"];
TextTable Topics(int count, int seed)
{
    var random = new Random(seed);
    var rows = Enumerable.Range(0, count).Select(i =>
    {
        var words = Enumerable.Range(0, random.Next(2, 5)).Select(_ => filler[random.Next(filler.Length)]).ToList();
        words.Insert(random.Next(words.Count + 1), keywords[i % 2][random.Next(4)]);
        return new TopicRow(string.Join(' ', words), names[i % 2]);
    });
    return TextTable.FromRows(rows);
}

var train = Topics(160, seed: 1);
var test = Topics(40, seed: 2);
var options = new LoraTextClassificationOptions
{
    ModelPath = modelPath,
    Lora = new LoraOptions { Rank = 8 },
    Training = new TrainingOptions { LearningRate = 3e-3, BatchSize = 16, MaxSteps = 120, WarmupSteps = 3, Seed = 1 },
};

var progress = new ConsoleProgress();
using var classifier = new LoraTextClassificationEstimator(options).Fit(train, progress);
var predicted = classifier.Transform(test);
var truth = test.GetColumn<string>("Label");
var labels = predicted.GetColumn<int>("PredictedLabel");
double accuracy = truth.Zip(labels).Count(p => p.First == classifier.LabelNames![p.Second]) / (double)truth.Count;
Console.WriteLine($"held-out accuracy: {accuracy:F3} on {truth.Count} rows (chance 0.5); classes: {string.Join(", ", classifier.LabelNames!)}");
var first = test.GetColumn<string>("Text")[0];
Console.WriteLine($"'{first}' → {classifier.LabelNames![labels[0]]} (p = {predicted.GetColumn<float[]>("Score")[0].Max():F3})");

string adapter = Path.Combine(output, "adapter");
classifier.SaveAdapter(adapter);
using (var loaded = LoraTextClassificationTransformer.Load(adapter, options))
{
    bool same = loaded.Transform(test).GetColumn<int>("PredictedLabel").SequenceEqual(labels);
    Console.WriteLine($"saved {adapter} ({string.Join(", ", Directory.GetFiles(adapter).Select(Path.GetFileName))}); loaded predictions identical: {same}");
}

string onnx = Path.Combine(output, "classifier.onnx");
classifier.ExportOnnx(onnx);
Console.WriteLine($"exported {onnx}: inputs input_ids, attention_mask; output logits [batch, {classifier.NumLabels}]");

classifier.Merge();
bool mergedSame = classifier.Transform(test).GetColumn<int>("PredictedLabel").SequenceEqual(labels);
Console.WriteLine($"merged into the base weights; predictions identical: {mergedSame}");

/// <summary>One labelled text.</summary>
internal sealed record TopicRow(string Text, string Label);
