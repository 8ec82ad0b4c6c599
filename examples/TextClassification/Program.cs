// Fine-tunes a text classifier with LoRA as a step of an ML.NET pipeline, on the real TinyStories model the
// repository ships: MapValueToKey → LoraTextClassification → MapKeyToValue, then ML.NET's evaluator, a
// PredictionEngine, and the adapter saved, reloaded, exported to ONNX and merged. An ML.NET model zip cannot hold
// the LoRA step: docs/mlnet-saving.md shows how an app saves and reloads the whole pipeline.
//   dotnet run --project examples/TextClassification                       (models/tinystories-656k)
//   dotnet run --project examples/TextClassification -- MODEL_DIR OUT_DIR  (any Hugging Face Llama-family folder)
// Microsoft.ML.Lora and the Shared/ helpers come as global usings (examples/Directory.Build.props).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Lora.MLNet;

var (output, modelPath) = ExampleFolders.FromArgs(args, "text-classification");

// A small topic task in the stories' own words: is the sentence about an animal, a food or a toy?
string[] topics = ["animal", "food", "toy"];
string[][] words = [["cat", "dog", "bird", "fish", "frog", "bunny"], ["cake", "apple", "cookie", "soup", "bread", "pie"], ["ball", "doll", "kite", "car", "train", "truck"]];
string[] names = ["Lily", "Tom", "Ben", "Sue", "Max", "Mia"];
string[] templates = ["{0} saw a {1} in the park.", "{0} had a big {1}.", "One day, {0} found a {1}.", "The {1} was near {0}."];
List<Row> Topics(int count, int seed)
{
    var random = new Random(seed);
    return [.. Enumerable.Range(0, count).Select(i => new Row
    {
        Sentence1 = string.Format(templates[random.Next(templates.Length)], names[random.Next(names.Length)], words[i % 3][random.Next(6)]),
        Label = topics[i % 3],
    })];
}

var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadFromEnumerable(Topics(90, seed: 1));
IDataView test = ml.Data.LoadFromEnumerable(Topics(45, seed: 2));
var options = new LoraTextClassificationTrainer.Options
{
    ModelPath = modelPath,
    LearningRate = 5e-3,    // a 656K-parameter model takes a higher rate than the 2e-4 default for large ones
    MaxEpochs = 20,
    BatchSize = 16,
    Progress = new ConsoleProgress(),
};
var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var model = pipeline.Fit(train);

var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
Console.WriteLine($"held-out micro accuracy {metrics.MicroAccuracy:F3}, log-loss {metrics.LogLoss:F3} (majority baseline: accuracy 0.333, log-loss 1.099)");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

var engine = ml.Model.CreatePredictionEngine<Row, Prediction>(model);
foreach (string text in new[] { "Mia gave the frog a hug.", "Tom ate the pie.", "The kite flew up high." })
{
    var prediction = engine.Predict(new Row { Sentence1 = text });
    Console.WriteLine($"'{text}' → {prediction.PredictedLabel} (p = {prediction.Score.Max():F3})");
}

var classifier = (LoraTextClassificationTransformer)model.ElementAt(1);
string adapter = Path.Combine(output, "adapter");
classifier.SaveAdapter(adapter);
Console.WriteLine($"saved {adapter} ({string.Join(", ", Directory.GetFiles(adapter).Select(Path.GetFileName).Order())})");
using (var loaded = LoraTextClassificationTransformer.Load(ml, adapter))
{
    var keyed = model.ElementAt(0).Transform(test);
    bool same = loaded.Transform(keyed).GetColumn<uint>("PredictedLabel").SequenceEqual(classifier.Transform(keyed).GetColumn<uint>("PredictedLabel"));
    Console.WriteLine($"loaded the adapter into a new transformer; predictions identical: {same}");
}

string onnx = Path.Combine(output, "classifier.onnx");
classifier.ExportOnnx(onnx);
Console.WriteLine($"exported {onnx}: inputs input_ids, attention_mask; output logits [batch, {classifier.NumLabels}]");
var before = model.Transform(test).GetColumn<string>("PredictedLabel").ToList();
classifier.Merge();
Console.WriteLine($"merged into the base weights; predictions identical: {model.Transform(test).GetColumn<string>("PredictedLabel").SequenceEqual(before)}");
classifier.Dispose();

/// <summary>A labelled sentence as ML.NET reads it (String columns Sentence1 and Label).</summary>
internal sealed class Row
{
    public string Sentence1 { get; set; } = "";

    public string Label { get; set; } = "";
}

/// <summary>What the pipeline adds: the class name (after MapKeyToValue) and the class probabilities.</summary>
internal sealed class Prediction
{
    public string PredictedLabel { get; set; } = "";

    public float[] Score { get; set; } = [];
}
