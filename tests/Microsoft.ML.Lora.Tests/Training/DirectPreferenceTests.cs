using System.Text.Json;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// DPO with the reference as the model without its adapters: loss, metrics and adapter gradients equal the float64
/// PyTorch reference (tests/reference/make_dpo_fixture.py) for the sigmoid loss, cDPO, IPO and RPO.
/// </summary>
public sealed class DirectPreferenceTests
{
    // Same weights, float32 kernels against float64: ≤ 1e-4 of the largest value, DESIGN.md's bar.
    private const double Tolerance = 1e-4;

    private static readonly string Fixture = FixturePaths.Case("dpo_llama_gqa");

    [Theory]
    [InlineData("sigmoid")]
    [InlineData("cdpo")]
    [InlineData("ipo")]
    [InlineData("rpo")]
    public void LossMetricsAndAdapterGradientsEqualTheReference(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture, "expected.json")));
        var pairs = doc.RootElement.GetProperty("pairs").EnumerateArray()
            .Select(static p => new PreferencePair(Ids(p, "prompt"), Ids(p, "chosen"), Ids(p, "rejected"))).ToList();
        var expected = doc.RootElement.GetProperty("losses").GetProperty(name);
        var options = new PreferenceOptions
        {
            Beta = expected.GetProperty("beta").GetDouble(),
            Loss = expected.GetProperty("loss_type").GetString() == "ipo" ? PreferenceLossType.Ipo : PreferenceLossType.Sigmoid,
            LabelSmoothing = expected.GetProperty("label_smoothing").GetDouble(),
            RpoAlpha = expected.GetProperty("rpo_alpha").GetDouble(),
        };

        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        LoadAdapterWithoutDropout(model, "peft_llama_gqa");
        model.OnTestBackend().ZeroGrad();
        var result = DirectPreference.ForwardBackward(model, pairs, options, gradientScale: 1.0 / pairs.Count);

        Assert.Equal(pairs.Count, result.Pairs);
        Assert.Equal(expected.GetProperty("loss").GetDouble(), result.Loss, 1e-5 * Math.Max(1, Math.Abs(result.Loss)));
        Assert.Equal(expected.GetProperty("margin").GetDouble(), result.Margin, 1e-5);
        Assert.Equal(expected.GetProperty("accuracy").GetDouble(), result.Accuracy);
        Assert.Equal(expected.GetProperty("policy_chosen_logps").EnumerateArray().Sum(static e => e.GetDouble()), result.ChosenLogProbSum, 1e-4);
        Assert.Equal(expected.GetProperty("policy_rejected_logps").EnumerateArray().Sum(static e => e.GetDouble()), result.RejectedLogProbSum, 1e-4);

        using var grads = SafeTensorsFile.Open(Path.Combine(Fixture, name + "_grads.safetensors"));
        int compared = 0;
        foreach (var linear in model.Linears().Where(static l => l.Applied is not null))
        {
            var adapter = linear.Applied!;
            string key = "base_model.model." + linear.Name;
            ReferenceModelTests.AssertClose(grads.ReadFloats(key + ".lora_A.weight"), adapter.A.Grad!.ToFloatArray(), Tolerance, $"{name} {linear.Name} lora_A grad");
            ReferenceModelTests.AssertClose(grads.ReadFloats(key + ".lora_B.weight"), adapter.B.Grad!.ToFloatArray(), Tolerance, $"{name} {linear.Name} lora_B grad");
            compared += 2;
        }

        Assert.Equal(grads.Tensors.Count, compared);
    }

    [Fact]
    public void AtStepZeroThePolicyIsTheReferenceTheLossIsLn2AndOnlyBMoves()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 3);
        model.OnTestBackend().ZeroGrad();
        PreferencePair[] pairs = [new([1, 5], [9, 12, 2], [30, 2]), new([1], [7, 7, 7], [8, 40, 41, 2])];
        var result = DirectPreference.ForwardBackward(model, pairs, new PreferenceOptions(), gradientScale: 0.5);

        Assert.Equal(Math.Log(2), result.Loss);
        Assert.Equal(0, result.Margin);
        Assert.Equal(0, result.Correct);
        var adapters = model.Linears().Where(static l => l.Applied is not null).Select(static l => l.Applied!).ToList();
        Assert.All(adapters, a => Assert.All(a.A.Grad!.ToFloatArray(), g => Assert.Equal(0f, g)));
        Assert.Contains(adapters, a => a.B.Grad!.ToFloatArray().Any(static g => g != 0));
    }

    [Fact]
    public void BadOptionsAndEmptyCompletionsAreRefusedByName()
    {
        Assert.Contains("Beta", Assert.Throws<ArgumentOutOfRangeException>(() => new PreferenceOptions { Beta = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("LabelSmoothing", Assert.Throws<ArgumentException>(() => new PreferenceOptions { Loss = PreferenceLossType.Ipo, LabelSmoothing = 0.1 }.Validate()).Message, StringComparison.Ordinal);
        var e = Assert.Throws<ArgumentException>(() => DirectPreference.Batch([new PreferencePair([1], [5], [])]));
        Assert.Contains("pair 0", e.Message, StringComparison.Ordinal);
        Assert.Contains("rejected 0", e.Message, StringComparison.Ordinal);
    }

    /// <summary>A PEFT fixture adapter, trainable, with lora_dropout 0 so the training forward is as deterministic as the reference's.</summary>
    internal static void LoadAdapterWithoutDropout(LlamaForCausalLM model, string fixture)
    {
        string adapterDir = Path.Combine(Path.GetTempPath(), "lora-nodropout-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(adapterDir);
        try
        {
            File.Copy(Path.Combine(FixturePaths.Case(fixture), "adapter_model.safetensors"), Path.Combine(adapterDir, "adapter_model.safetensors"));
            var config = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(Path.Combine(FixturePaths.Case(fixture), "adapter_config.json")))!;
            config["lora_dropout"] = 0.0;
            File.WriteAllText(Path.Combine(adapterDir, "adapter_config.json"), config.ToJsonString());
            model.LoadAdapter(adapterDir, isTrainable: true);
        }
        finally
        {
            Directory.Delete(adapterDir, recursive: true);
        }
    }

    private static int[] Ids(JsonElement pair, string field) => pair.GetProperty(field).EnumerateArray().Select(static e => e.GetInt32()).ToArray();
}
