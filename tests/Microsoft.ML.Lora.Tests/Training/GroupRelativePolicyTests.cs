using System.Text.Json;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tests.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>
/// The GRPO objective (advantages, clipped ratio, k3 KL to the model without adapters; grpo, bnpo and dr_grpo
/// averaging) and its adapter gradients equal a float64 PyTorch reference (tests/reference/make_grpo_fixture.py).
/// </summary>
public sealed class GroupRelativePolicyTests
{
    private const double Tolerance = 1e-4;

    private static readonly string Fixture = FixturePaths.Case("grpo_llama_gqa");

    [Theory]
    [InlineData("grpo")]
    [InlineData("bnpo")]
    [InlineData("dr_grpo")]
    public void LossClippingKlAndAdapterGradientsEqualTheReference(string name)
    {
        using var doc = JsonDocument.Parse(File.ReadAllText(Path.Combine(Fixture, "expected.json")));
        var root = doc.RootElement;
        var expected = root.GetProperty("cases").GetProperty(name);
        var rewards = root.GetProperty("samples").EnumerateArray().Select(static s => s.GetProperty("reward").GetDouble()).ToArray();
        double[] advantages = GroupRelativePolicy.Advantages(rewards, root.GetProperty("group_size").GetInt32());
        var samples = root.GetProperty("samples").EnumerateArray().Select((s, i) =>
        {
            Assert.Equal(s.GetProperty("advantage").GetDouble(), advantages[i], 1e-12);
            return new GrpoSample(Ints(s, "prompt"), Ints(s, "completion"), s.GetProperty("old_logps").EnumerateArray().Select(static e => e.GetSingle()).ToArray(), advantages[i]);
        }).ToList();
        var options = new GrpoOptions
        {
            GroupSize = root.GetProperty("group_size").GetInt32(),
            Epsilon = expected.GetProperty("epsilon").GetDouble(),
            KlBeta = expected.GetProperty("kl_beta").GetDouble(),
            MaxCompletionLength = expected.GetProperty("max_completion_length").GetInt32(),
            Loss = expected.GetProperty("loss").GetString() switch { "grpo" => GrpoLossType.Grpo, "bnpo" => GrpoLossType.Bnpo, _ => GrpoLossType.DrGrpo },
        };

        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        DirectPreferenceTests.LoadAdapterWithoutDropout(model, "peft_llama_gqa");
        model.OnTestBackend().ZeroGrad();
        var result = GroupRelativePolicy.ForwardBackward(model, samples, options);

        Assert.Equal(expected.GetProperty("value").GetDouble(), result.Loss, 1e-5 * Math.Max(1, Math.Abs(result.Loss)));
        Assert.Equal(expected.GetProperty("tokens").GetInt64(), result.Tokens);
        Assert.Equal(expected.GetProperty("clipped_tokens").GetInt64(), result.ClippedTokens);
        Assert.Equal(expected.GetProperty("kl_sum").GetDouble(), result.KlSum, 1e-4 * Math.Max(1, expected.GetProperty("kl_sum").GetDouble()));

        using var grads = SafeTensorsFile.Open(Path.Combine(Fixture, name + "_grads.safetensors"));
        foreach (var linear in model.Linears().Where(static l => l.Applied is not null))
        {
            string key = "base_model.model." + linear.Name;
            ReferenceModelTests.AssertClose(grads.ReadFloats(key + ".lora_A.weight"), linear.Applied!.A.Grad!.ToFloatArray(), Tolerance, $"{name} {linear.Name} lora_A grad");
            ReferenceModelTests.AssertClose(grads.ReadFloats(key + ".lora_B.weight"), linear.Applied!.B.Grad!.ToFloatArray(), Tolerance, $"{name} {linear.Name} lora_B grad");
        }
    }

    [Fact]
    public void AdvantagesCenterEachGroupAndBadOptionsAreNamed()
    {
        double[] a = GroupRelativePolicy.Advantages([1, 0, 0, 1, 2, 2, 2, 2], groupSize: 4);
        Assert.Equal(0, a[..4].Sum(), 12);
        Assert.All(a[4..], static v => Assert.Equal(0, v));
        Assert.Equal([0.5, -0.5, -0.5, 0.5], GroupRelativePolicy.Advantages([1, 0, 0, 1], 4, scale: false));
        Assert.Throws<ArgumentException>(() => GroupRelativePolicy.Advantages([1, 2, 3], 2));
        Assert.Contains("GroupSize", Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoOptions { GroupSize = 1 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("Epsilon", Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoOptions { Epsilon = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("Iterations", Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoOptions { Iterations = 0 }.Validate()).Message, StringComparison.Ordinal);
        Assert.Contains("Iterations", Assert.Throws<ArgumentOutOfRangeException>(() => new GrpoOptions { Iterations = GrpoOptions.MaxIterations + 1 }.Validate()).Message, StringComparison.Ordinal);
    }

    private static int[] Ints(JsonElement e, string field) => e.GetProperty(field).EnumerateArray().Select(static v => v.GetInt32()).ToArray();
}
