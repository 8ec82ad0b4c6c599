using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>
/// The service on the libtorch backend (<c>lora serve --backend torch</c>, the real CLI with TorchSharp-cpu): a job
/// trains there and follows the native engine's run, its adapter loads in the native engine, and /generate answers.
/// </summary>
public sealed class TorchBackendServiceTests
{
    [Fact]
    public async Task AJobOnTheTorchBackendFollowsTheNativeRunAndItsAdapterLoadsNatively()
    {
        string data = Path.Combine(Path.GetTempPath(), "lora-serve-torch-" + Guid.NewGuid().ToString("N"));
        ServiceHost.CreateData(data);
        try
        {
            using var serve = await ServeProcess.StartAsync(data, "--backend", "torch", "--device", "cpu", "--threads", "2");
            string id;
            using (var response = await serve.Client.PostAsJsonAsync("/jobs", new
            {
                model = "tiny",
                dataset = "a.jsonl",
                output = "run1",
                lora = new { rank = 4, alpha = 8.0 },
                training = new { learningRate = 0.02, maxSteps = 4, batchSize = 2, seed = 5, warmupRatio = 0.0 },
            }))
            {
                string text = await response.Content.ReadAsStringAsync();
                Assert.True(response.StatusCode == System.Net.HttpStatusCode.Created, text);
                id = JsonDocument.Parse(text).RootElement.GetProperty("id").GetString()!;
                using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(90));
                var events = await SseClient.ReadAllAsync(serve.Client, $"/jobs/{id}/events", cts.Token);
                Assert.True(events.Any(e => e.Type == "state" && e.State == "succeeded"), serve.Log);
                var losses = events.Where(e => e.Type == "step").Select(e => e.Data.GetProperty("loss").GetDouble()).ToArray();

                // The same run on the native engine, in process.
                string reference = Path.Combine(data, "reference");
                var (native, evaluation) = InProcessTraining.Train(
                    Path.Combine(data, "models", "tiny"),
                    Path.Combine(data, "datasets", "a.jsonl"),
                    new LoraOptions { Rank = 4, Alpha = 8 },
                    new TrainingOptions { LearningRate = 0.02, MaxSteps = 4, BatchSize = 2, Seed = 5, WarmupRatio = 0 },
                    reference);
                Assert.Equal(native.Count, losses.Length);
                // Step 1 sees identical weights (only summation order differs); later steps carry the updates' rounding.
                Assert.Equal(native[0], losses[0], native[0] * 1e-6);
                for (int i = 1; i < losses.Length; i++)
                {
                    Assert.Equal(native[i], losses[i], native[i] * 2e-5);
                }

                // The adapter the torch job wrote evaluates in the native engine as the native run's adapter does.
                var rows = InProcessTraining.Rows(Path.Combine(data, "models", "tiny"), Path.Combine(data, "datasets", "a.jsonl"));
                using var model = LlamaForCausalLM.Load(Path.Combine(data, "models", "tiny"));
                model.LoadAdapter(Path.Combine(data, "outputs", "run1"));
                Assert.Equal(evaluation, Evaluator.Evaluate(model, rows, batchSize: 4).Mean, evaluation * 1e-4);
            }

            // Greedy generation with the job's adapter gives the native engine's tokens.
            using var generate = await serve.Client.PostAsJsonAsync("/generate", new { model = "tiny", adapter = id, prompt = "ab ab", maxNewTokens = 12 });
            string answer = await generate.Content.ReadAsStringAsync();
            Assert.True(generate.IsSuccessStatusCode, answer + "\n" + serve.Log);
            var tokens = JsonDocument.Parse(answer).RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
            using (var native = LlamaForCausalLM.Load(Path.Combine(data, "models", "tiny")))
            {
                native.LoadAdapter(Path.Combine(data, "outputs", "run1"));
                var tokenizer = Tokenizer.Load(Path.Combine(data, "models", "tiny"));
                var options = new GenerationOptions { MaxNewTokens = 12, StopTokenIds = tokenizer.EosTokenId is int eos ? [eos] : [] };
                Assert.Equal(Generator.Generate(native, tokenizer.Encode("ab ab", addSpecialTokens: true), options).ToArray(), tokens);
            }

            Assert.Contains("jobs and /generate run on the torch (cpu) backend", serve.Log, StringComparison.Ordinal);
        }
        finally
        {
            Directory.Delete(data, recursive: true);
        }
    }
}
