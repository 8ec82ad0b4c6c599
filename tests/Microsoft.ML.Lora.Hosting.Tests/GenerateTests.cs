using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>POST /generate switches between adapters loaded side by side over one base model.</summary>
public sealed class GenerateTests
{
    private const string Prompt = "ab x";

    [Fact]
    public async Task GenerateSwitchesAdaptersPerRequestAndMatchesInProcessGeneration()
    {
        await using var host = await ServiceHost.StartAsync();
        object Job(string dataset, string output) => new
        {
            model = "tiny",
            dataset,
            output,
            lora = new { rank = 4, alpha = 16.0 },
            training = new { learningRate = 0.05, maxSteps = 12, batchSize = 4, warmupRatio = 0.0, schedule = "constant" },
        };
        string a = await host.SubmitAsync(Job("a.jsonl", "gen-a"));
        string b = await host.SubmitAsync(Job("b.jsonl", "gen-b"));
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(a)).GetProperty("state").GetString());
        Assert.Equal("succeeded", (await host.WaitForTerminalAsync(b)).GetProperty("state").GetString());

        var fromA = await GenerateAsync(host, a);
        var fromB = await GenerateAsync(host, b);
        var fromBase = await GenerateAsync(host, null);
        var fromAAgain = await GenerateAsync(host, a);
        Assert.NotEqual(fromA, fromB);
        Assert.NotEqual(fromA, fromBase);
        Assert.NotEqual(fromB, fromBase);
        Assert.Equal(fromA, fromAAgain);

        Assert.Equal(InProcess(host, Path.Combine(host.OutputRoot, "gen-a")), fromA);
        Assert.Equal(InProcess(host, Path.Combine(host.OutputRoot, "gen-b")), fromB);
        Assert.Equal(InProcess(host, null), fromBase);

        // An unknown adapter is 404; a job that has not succeeded is 409; no model and no adapter is a field error.
        using (var missing = await host.PostJsonAsync("/generate", new { adapter = "nosuchjob", prompt = Prompt }))
        {
            Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        }

        string unfinished = await host.SubmitAsync(new { model = "tiny", dataset = "a.jsonl", output = "never", training = new { maxSteps = 1_000_000 } });
        using (var conflict = await host.PostJsonAsync("/generate", new { adapter = unfinished, prompt = Prompt }))
        {
            Assert.Equal(HttpStatusCode.Conflict, conflict.StatusCode);
        }

        using (var noModel = await host.PostJsonAsync("/generate", new { prompt = Prompt }))
        {
            Assert.Equal(HttpStatusCode.BadRequest, noModel.StatusCode);
            Assert.Contains("\"model\"", await noModel.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var escape = await host.PostJsonAsync("/generate", new { model = "../datasets", prompt = Prompt }))
        {
            Assert.Equal(HttpStatusCode.Forbidden, escape.StatusCode);
        }

        // A prompt past the model's positions (2048 for the tiny model; the byte tokenizer makes one token per
        // character) is refused before any work: it would otherwise hold the base for minutes.
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var tooLong = await host.PostJsonAsync("/generate", new { model = "tiny", prompt = new string('a', 100_000), maxNewTokens = 1 }))
        {
            string text = await tooLong.Content.ReadAsStringAsync();
            Assert.True(tooLong.StatusCode == HttpStatusCode.BadRequest, $"{(int)tooLong.StatusCode}: {text}");
            Assert.Contains("\"prompt\"", text, StringComparison.Ordinal);
            Assert.Contains("2048", text, StringComparison.Ordinal);
        }

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"refusing the long prompt took {clock.Elapsed}");
    }

    private static async Task<int[]> GenerateAsync(ServiceHost host, string? adapter)
    {
        using var response = await host.PostJsonAsync("/generate", new { model = "tiny", adapter, prompt = Prompt, maxNewTokens = 12 });
        string text = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        using var doc = JsonDocument.Parse(text);
        var tokens = doc.RootElement.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32()).ToArray();
        var tokenizer = Tokenizer.Load(host.ModelDirectory);
        Assert.Equal(tokenizer.Decode(tokens, skipSpecialTokens: true), doc.RootElement.GetProperty("text").GetString());
        return tokens;
    }

    private static int[] InProcess(ServiceHost host, string? adapterDirectory)
    {
        using var model = LlamaForCausalLM.Load(host.ModelDirectory);
        if (adapterDirectory is not null)
        {
            model.LoadAdapter(adapterDirectory);
        }

        var tokenizer = Tokenizer.Load(host.ModelDirectory);
        var options = new GenerationOptions { MaxNewTokens = 12, StopTokenIds = tokenizer.EosTokenId is int eos ? [eos] : [] };
        return Generator.Generate(model, tokenizer.Encode(Prompt, addSpecialTokens: true), options).ToArray();
    }
}
