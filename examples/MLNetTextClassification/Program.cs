// Fine-tunes a text classifier with LoRA as a step of an ML.NET pipeline:
// MapValueToKey → LoraTextClassification → MapKeyToValue, then ML.NET's evaluator, a PredictionEngine,
// and the adapter saved and exported to ONNX (an ML.NET model zip cannot hold the LoRA step).
//   dotnet run --project examples/MLNetTextClassification -p:MLNetAssemblies=DIR                         (a tiny model made on the spot)
//   dotnet run --project examples/MLNetTextClassification -p:MLNetAssemblies=DIR -- MODEL_DIR OUT_DIR   (a Hugging Face model folder)
// Microsoft.ML.Lora, its .Lora and .Training namespaces and the Shared/ helpers come as global usings (examples/Directory.Build.props).
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Lora.MLNet;

var (output, modelPath) = ExampleFolders.FromArgs(args, "mlnet-text-classification");

// A small topic task with three classes: the class is the topic of one keyword among filler words.
string[] classes = ["fruit", "tree", "weather"];
string[][] keywords = [["kiwi", "lime", "plum", "quince"], ["oak", "yew", "birch", "cedar"], ["hail", "sleet", "fog", "storm"]];
string[] filler = ["we", "saw", "a", "the", "at", "to", "and", "so", "then", "you", "it", "was"];
IEnumerable<TopicRow> Topics(int count, int seed)
{
    var random = new Random(seed);
    for (int i = 0; i < count; i++)
    {
        var words = Enumerable.Range(0, random.Next(2, 5)).Select(_ => filler[random.Next(filler.Length)]).ToList();
        words.Insert(random.Next(words.Count + 1), keywords[i % 3][random.Next(4)]);
        yield return new TopicRow { Text = string.Join(' ', words), Label = classes[i % 3] };
    }
}

var ml = new MLContext(seed: 1);
IDataView train = ml.Data.LoadFromEnumerable(Topics(150, seed: 1).ToList());
IDataView test = ml.Data.LoadFromEnumerable(Topics(45, seed: 2).ToList());
var options = new LoraTextClassificationOptions
{
    ModelPath = modelPath,
    Lora = new LoraOptions { Rank = 8 },
    Training = new TrainingOptions { LearningRate = 5e-3, BatchSize = 16, MaxSteps = 120, WarmupSteps = 3, Seed = 1 },
    PredictionBatchSize = 16,
};

var pipeline = ml.Transforms.Conversion.MapValueToKey("Label")
    .Append(ml.MulticlassClassification.Trainers.LoraTextClassification(options, new ConsoleProgress()))
    .Append(ml.Transforms.Conversion.MapKeyToValue("PredictedLabel"));
var model = pipeline.Fit(train);

var metrics = ml.MulticlassClassification.Evaluate(model.Transform(test));
Console.WriteLine($"held-out micro accuracy {metrics.MicroAccuracy:F3}, macro accuracy {metrics.MacroAccuracy:F3}, log-loss {metrics.LogLoss:F3} (chance accuracy 0.333)");
Console.WriteLine(metrics.ConfusionMatrix.GetFormattedConfusionTable());

var engine = ml.Model.CreatePredictionEngine<TopicRow, TopicPrediction>(model);
foreach (string text in new[] { "you saw a quince", "then the storm", "so birch it was" })
{
    var prediction = engine.Predict(new TopicRow { Text = text });
    Console.WriteLine($"'{text}' → {prediction.PredictedLabel} (p = {prediction.Score.Max():F3})");
}

var classifier = (LoraTextClassificationPredictionTransformer)model.ElementAt(1);
// ML.NET's model zip cannot hold the LoRA step (a stream here: ML.NET's Save to a path leaves its partial file behind).
try
{
    using var zip = new MemoryStream();
    ml.Model.Save(model, train.Schema, zip);
}
catch (NotSupportedException e)
{
    Console.WriteLine($"ml.Model.Save: {e.Message}");
}

string adapter = Path.Combine(output, "adapter");
classifier.SaveAdapter(adapter);
Console.WriteLine($"saved {adapter} ({string.Join(", ", Directory.GetFiles(adapter).Select(Path.GetFileName))})");
using (var loaded = LoraTextClassificationPredictionTransformer.Load(adapter, options))
{
    var keyed = model.ElementAt(0).Transform(test);
    bool same = loaded.Transform(keyed).GetColumn<uint>("PredictedLabel").SequenceEqual(classifier.Transform(keyed).GetColumn<uint>("PredictedLabel"));
    Console.WriteLine($"loaded the adapter into a new ML.NET transformer; predictions identical: {same}");
}

string onnx = Path.Combine(output, "classifier.onnx");
classifier.ExportOnnx(onnx);
Console.WriteLine($"exported {onnx}: inputs input_ids, attention_mask; output logits [batch, {classifier.NumLabels}]");
classifier.Dispose();

/// <summary>A labelled text as ML.NET reads it (String columns Text and Label).</summary>
internal sealed class TopicRow
{
    public string Text { get; set; } = "";

    public string Label { get; set; } = "";
}

/// <summary>What the pipeline adds: the class name (after MapKeyToValue) and the class probabilities.</summary>
internal sealed class TopicPrediction
{
    public string PredictedLabel { get; set; } = "";

    public float[] Score { get; set; } = [];
}
