using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>
/// The real pretrained model the repository ships (models/tinystories-656k, loaded as published: its tied
/// matrix stored only as lm_head.weight) against the float64 reference's logits, loss and greedy story
/// (tests/reference/make_tinystories_fixture.py → tests/fixtures/tinystories/expected.safetensors).
/// </summary>
public sealed class PretrainedModelTests
{
    // F32 engine vs the float64 reference: the same bar as the random fixtures (ReferenceModelTests).
    private const double F32Tolerance = 1e-4;

    private static string ModelFolder => Path.GetFullPath(Path.Combine(FixturePaths.Root, "..", "..", "models", "tinystories-656k"));

    private static string Expected => Path.Combine(FixturePaths.Case("tinystories"), "expected.safetensors");

    [Fact]
    public void LogitsAndLossMatchTheReference()
    {
        using var expected = SafeTensorsFile.Open(Expected);
        using var model = LlamaForCausalLM.Load(ModelFolder).OnTestBackend();
        var batch = ReferenceModelTests.BatchOf(expected);
        using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, model.Config.VocabSize);
        var loss = model.Forward(batch, logits);
        ReferenceModelTests.AssertClose(expected.ReadFloats("logits"), logits.ToFloatArray(), F32Tolerance, "tinystories logits");
        double refLoss = expected.ReadFloats("loss")[0];
        Assert.Equal(refLoss, loss.Mean, refLoss * F32Tolerance);
    }

    [Fact]
    public void GreedyStoryMatchesTheReferenceWithAndWithoutTheCache()
    {
        using var expected = SafeTensorsFile.Open(Expected);
        using var model = LlamaForCausalLM.Load(ModelFolder).OnTestBackend();
        int[] prompt = [.. expected.ReadInt64("prompt_ids").Select(static x => (int)x)];
        int[] story = [.. expected.ReadInt64("greedy_ids").Select(static x => (int)x)];
        var options = new GenerationOptions { MaxNewTokens = story.Length };
        Assert.Equal(story, Generator.Generate(model, prompt, options));
        Assert.Equal(story, Generator.Generate(model, prompt, options with { UseCache = false }));
    }
}
