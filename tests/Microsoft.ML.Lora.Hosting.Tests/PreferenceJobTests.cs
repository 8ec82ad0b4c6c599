using System.Net;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary><c>"dpo"</c> and <c>"grpo"</c> jobs train exactly as the library's <see cref="Trainer"/> does.</summary>
public sealed class PreferenceJobTests
{
    [Fact]
    public async Task ADpoJobTrainsAsTheLibraryAndBadPreferenceFieldsAreNamed()
    {
        await using var host = await ServiceHost.StartAsync();
        string pairs = Path.Combine(host.DatasetRoot, "prefs.jsonl");
        File.WriteAllLines(pairs, Enumerable.Range(0, 6).Select(i => System.Text.Json.JsonSerializer.Serialize(new { prompt = $"hello {i}", chosen = $" kind words {i}", rejected = $" rude {i}!" })));
        string id = await host.SubmitAsync(new
        {
            model = "tiny",
            dataset = "prefs.jsonl",
            output = "dpo",
            kind = "dpo",
            preference = new { beta = 0.2, loss = "ipo" },
            lora = new { rank = 2, alpha = 4.0 },
            training = new { learningRate = 0.01, maxSteps = 3, batchSize = 2, seed = 5, warmupRatio = 0.0 },
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        Assert.True(events[^1].State == "succeeded", events[^1].Data.ToString());

        using var model = LlamaForCausalLM.Load(host.ModelDirectory);
        var rows = PreferenceDataset.Load(pairs, Tokenizer.Load(host.ModelDirectory));
        var lora = new LoraOptions { Rank = 2, Alpha = 4 };
        model.AddAdapter(lora, seed: 5);
        var preference = new PreferenceOptions { Beta = 0.2, Loss = PreferenceLossType.Ipo };
        using var trainer = new Trainer(model, new TrainingOptions { Preference = preference, LearningRate = 0.01, MaxSteps = 3, BatchSize = 2, Seed = 5, WarmupRatio = 0 });
        var result = trainer.Train(rows);
        string reference = Path.Combine(host.DataDirectory, "reference");
        model.SaveAdapter(reference, options: lora);
        Assert.Equal(result.StepLosses, events.Where(e => e.Type == "step").Select(e => e.Data.GetProperty("loss").GetDouble()));
        Assert.Equal(File.ReadAllBytes(Path.Combine(reference, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(host.OutputRoot, "dpo", "adapter_model.safetensors")));

        foreach (var (body, field) in new (object Body, string Field)[]
        {
            (new { model = "tiny", dataset = "prefs.jsonl", output = "x", kind = "ppo" }, "kind"),
            (new { model = "tiny", dataset = "prefs.jsonl", output = "x", kind = "dpo", preference = new { beta = -1.0 } }, "preference.beta"),
            (new { model = "tiny", dataset = "prefs.jsonl", output = "x", kind = "dpo", preference = new { loss = "hinge" } }, "preference.loss"),
            (new { model = "tiny", dataset = "prefs.jsonl", output = "x", preference = new { beta = 0.1 } }, "preference"),
        })
        {
            using var response = await host.PostJsonAsync("/jobs", body);
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            Assert.Contains($"\"{field}\"", text, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task AGrpoJobTrainsAsTheLibraryAndRefusesCommandRewards()
    {
        await using var host = await ServiceHost.StartAsync();
        string prompts = Path.Combine(host.DatasetRoot, "prompts.jsonl");
        File.WriteAllLines(prompts, Enumerable.Range(0, 4).Select(i => System.Text.Json.JsonSerializer.Serialize(new { prompt = $"hello {i}", answer = "ok" })));
        string id = await host.SubmitAsync(new
        {
            model = "tiny",
            dataset = "prompts.jsonl",
            output = "grpo",
            kind = "grpo",
            grpo = new { rewards = new[] { "regex:o", "0.5*length:8" }, groupSize = 3, maxNewTokens = 6, klBeta = 0.05, numIterations = 2 },
            lora = new { rank = 2, alpha = 4.0 },
            training = new { learningRate = 0.01, maxSteps = 4, batchSize = 2, seed = 5, warmupRatio = 0.0 },
        });
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(60));
        var events = await SseClient.ReadAllAsync(host.Client, $"/jobs/{id}/events", cts.Token);
        Assert.True(events[^1].State == "succeeded", events[^1].Data.ToString());

        using var model = LlamaForCausalLM.Load(host.ModelDirectory);
        var tokenizer = Tokenizer.Load(host.ModelDirectory);
        var rows = PromptDataset.Load(prompts, tokenizer);
        var lora = new LoraOptions { Rank = 2, Alpha = 4 };
        model.AddAdapter(lora, seed: 5);
        var (reward, _) = GrpoRewards.Parse(["regex:o", "0.5*length:8"], allowCommands: false);
        using var trainer = new Trainer(model, new TrainingOptions { Grpo = new GrpoOptions { GroupSize = 3, MaxCompletionLength = 6, KlBeta = 0.05, Iterations = 2 }, LearningRate = 0.01, MaxSteps = 4, BatchSize = 2, Seed = 5, WarmupRatio = 0 });
        trainer.Train(rows, reward, tokenizer);
        string reference = Path.Combine(host.DataDirectory, "reference");
        model.SaveAdapter(reference, options: lora);
        Assert.Equal(File.ReadAllBytes(Path.Combine(reference, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(host.OutputRoot, "grpo", "adapter_model.safetensors")));

        foreach (var (body, field) in new (object Body, string Field)[]
        {
            (new { model = "tiny", dataset = "prompts.jsonl", output = "x", kind = "grpo", grpo = new { rewards = new[] { "cmd:rm -rf /" } } }, "grpo.rewards"),
            (new { model = "tiny", dataset = "prompts.jsonl", output = "x", kind = "grpo" }, "grpo.rewards"),
            (new { model = "tiny", dataset = "prompts.jsonl", output = "x", kind = "grpo", grpo = new { rewards = new[] { "regex:a" }, groupSize = 1 } }, "grpo.groupSize"),
            (new { model = "tiny", dataset = "prompts.jsonl", output = "x", kind = "grpo", grpo = new { rewards = new[] { "regex:a" }, numIterations = 0 } }, "grpo.numIterations"),
            (new { model = "tiny", dataset = "prompts.jsonl", output = "x", grpo = new { rewards = new[] { "regex:a" } } }, "grpo"),
        })
        {
            using var response = await host.PostJsonAsync("/jobs", body);
            string text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.BadRequest, text);
            Assert.Contains($"\"{field}\"", text, StringComparison.Ordinal);
        }
    }
}
