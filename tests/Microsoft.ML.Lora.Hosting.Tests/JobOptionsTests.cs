using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>The request's LoRA and data options reach the library: a QLoRA job over a CSV column trains as the library does.</summary>
public sealed class JobOptionsTests
{
    [Fact]
    public async Task QloraJobOnACsvColumnTrainsExactlyAsTheLibrary()
    {
        await using var host = await ServiceHost.StartAsync();
        string csv = Path.Combine(host.DatasetRoot, "c.csv");
        File.WriteAllLines(csv, ["id,body", .. Enumerable.Range(0, 6).Select(i => $"{i},\"hello {i}, world {i}\"")]);
        string id = await host.SubmitAsync(new
        {
            model = "tiny",
            dataset = "c.csv",
            output = "qlora",
            lora = new { rank = 2, alpha = 4.0, quantize = "nf4", doubleQuant = true, targets = new[] { "q_proj", "v_proj" } },
            training = new { learningRate = 0.01, maxSteps = 3, batchSize = 3, seed = 11, warmupRatio = 0.0, schedule = "cosine" },
            data = new { format = "csv", textColumn = "body" },
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        Assert.True(events[^1].State == "succeeded", events[^1].Data.ToString());

        using var model = LlamaForCausalLM.Load(host.ModelDirectory);
        model.QuantizeNf4(doubleQuant: true);
        var rows = TextDataset.Load(csv, Tokenizer.Load(host.ModelDirectory), new TextDatasetOptions { Format = DatasetFormat.Csv, TextColumn = "body", VocabSize = model.Config.VocabSize });
        var lora = new LoraOptions { Rank = 2, Alpha = 4, TargetModules = ["q_proj", "v_proj"] };
        model.AddAdapter(lora, seed: 11);
        using var trainer = new Trainer(model, new TrainingOptions { LearningRate = 0.01, MaxSteps = 3, BatchSize = 3, Seed = 11, WarmupRatio = 0, Schedule = LearningRateScheduleKind.Cosine });
        var result = trainer.Train(rows);
        string reference = Path.Combine(host.DataDirectory, "reference");
        model.SaveAdapter(reference, options: lora);

        Assert.Equal(result.StepLosses, events.Where(e => e.Type == "step").Select(e => e.Data.GetProperty("loss").GetDouble()));
        Assert.Equal(File.ReadAllBytes(Path.Combine(reference, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(host.OutputRoot, "qlora", "adapter_model.safetensors")));
        Assert.Equal(2 * 2 * model.Config.NumHiddenLayers, Adapters(host));

        // Generation applies the adapter over the NF4 base it trained on: the same tokens as the trained model.
        var tokenizer = Tokenizer.Load(host.ModelDirectory);
        var expected = Generator.Generate(model, tokenizer.Encode("hello", addSpecialTokens: true), new GenerationOptions { MaxNewTokens = 8, StopTokenIds = [TinyTextModelEos] }).ToArray();
        using var response = await host.PostJsonAsync("/generate", new { adapter = id, prompt = "hello", maxNewTokens = 8 });
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.IsSuccessStatusCode, text);
        using var doc = System.Text.Json.JsonDocument.Parse(text);
        Assert.Equal(expected, doc.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()));
    }

    private const int TinyTextModelEos = Microsoft.ML.Lora.Tests.Text.TinyTextModel.Eos;

    [Fact]
    public async Task AJobThatCannotTrainFailsWithTheLibrarysMessageAndWritesNothing()
    {
        await using var host = await ServiceHost.StartAsync();
        string id = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "never", lora = new { targets = new[] { "no_such_proj" } } });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        Assert.Equal("failed", events[^1].State);
        string error = events[^1].Data.GetProperty("error").GetString()!;
        Assert.Contains("no_such_proj", error, StringComparison.Ordinal);
        var job = await host.GetJobAsync(id);
        Assert.Equal("failed", job.GetProperty("state").GetString());
        Assert.Equal(error, job.GetProperty("error").GetString());
        Assert.False(Directory.Exists(Path.Combine(host.OutputRoot, "never")));

        // The service goes on: the next job trains.
        string next = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "next", training = new { maxSteps = 1 } });
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(next)).GetProperty("state").GetString());
    }

    // Tensors in the saved adapter: A and B for q_proj and v_proj of every layer, nothing else.
    private static int Adapters(ServiceHost host)
    {
        using var file = Microsoft.ML.Lora.Formats.SafeTensorsFile.Open(Path.Combine(host.OutputRoot, "qlora", "adapter_model.safetensors"));
        Assert.All(file.Tensors.Keys, k => Assert.True(k.Contains("q_proj", StringComparison.Ordinal) || k.Contains("v_proj", StringComparison.Ordinal), k));
        return file.Tensors.Count;
    }
}
