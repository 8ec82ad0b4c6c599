using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>
/// Logits, loss and every gradient of tiny models against tests/fixtures, written by the independent
/// float64 PyTorch reference (tests/reference/make_fixtures.py).
/// </summary>
public sealed class ReferenceModelTests
{
    // F32 engine vs a float64 reference: the error of the reductions here (K ≤ 64, 2 layers) is
    // ~1e-6 of the tensor's scale; 1e-4 of the largest magnitude is the bar the engine must meet.
    private const double F32Tolerance = 1e-4;

    // Loss of our BF16-weight model vs the reference loss with the same bf16-rounded weights: the
    // weights are identical, only F32 vs F64 arithmetic differs, so the F32 bar applies.
    private const double Bf16SameWeightsTolerance = 1e-4;

    // BF16 vs F32 weights: bf16 keeps 8 significant bits (relative rounding ≤ 2^-9 ≈ 2e-3 per weight);
    // the loss moves by far less as the errors average out (measured by the reference: 1.1e-3 relative
    // at most over the four cases), so 2e-3 relative is the stated bound.
    private const double Bf16VsF32Tolerance = 2e-3;

    public static TheoryData<string> Cases() => new(FixturePaths.Cases);

    [Theory]
    [MemberData(nameof(Cases))]
    public void LogitsLossAndEveryGradientMatchReference(string name)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name)).OnTestBackend();
        model.SetTrainable(true);
        model.KeepInputsEmbedsGrad = true;
        var batch = BatchOf(expected);

        var refLogits = expected.ReadFloats("logits");
        using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, model.Config.VocabSize);
        var forward = model.Forward(batch, logits);
        AssertClose(refLogits, logits.ToFloatArray(), F32Tolerance, $"{name} logits");

        double refLoss = expected.ReadFloats("loss")[0];
        Assert.Equal(refLoss, forward.Mean, refLoss * F32Tolerance);

        var trained = model.ForwardBackward(batch);
        Assert.Equal(refLoss, trained.Mean, refLoss * F32Tolerance);
        Assert.Equal(forward, trained);

        int checkedGrads = 0;
        foreach (var p in model.Parameters())
        {
            AssertClose(expected.ReadFloats("grad." + p.Name), p.Grad!.ToFloatArray(), F32Tolerance, $"{name} grad.{p.Name}");
            checkedGrads++;
        }

        Assert.Equal(expected.Tensors.Keys.Count(k => k.StartsWith("grad.model.", StringComparison.Ordinal) || k.StartsWith("grad.lm_head.", StringComparison.Ordinal)), checkedGrads);
        AssertClose(expected.ReadFloats("grad.inputs_embeds"), model.InputsEmbedsGrad!.ToFloatArray(), F32Tolerance, $"{name} grad.inputs_embeds");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void FrozenModelStillPropagatesInputGradientAndKeepsNoWeightGradient(string name)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name)).OnTestBackend();
        model.KeepInputsEmbedsGrad = true;
        model.ForwardBackward(BatchOf(expected));
        Assert.All(model.Parameters(), p => Assert.Null(p.Grad));
        AssertClose(expected.ReadFloats("grad.inputs_embeds"), model.InputsEmbedsGrad!.ToFloatArray(), F32Tolerance, $"{name} frozen grad.inputs_embeds");
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Bf16WeightsGiveTheReferenceBf16LossAndStayCloseToF32(string name)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name), DType.BF16).OnTestBackend();
        Assert.Equal(DType.BF16, model.Layers[0].SelfAttn.Projections().First().Weight.Value.DType);
        Assert.Equal(DType.BF16, model.EmbedTokens.Value.DType);
        double loss = model.Forward(BatchOf(expected)).Mean;
        double refBf16 = expected.ReadFloats("loss_bf16")[0], refF32 = expected.ReadFloats("loss")[0];
        Assert.Equal(refBf16, loss, refBf16 * Bf16SameWeightsTolerance);
        Assert.Equal(refF32, loss, refF32 * Bf16VsF32Tolerance);
    }

    [Fact]
    public void GradientCheckpointingGivesBitIdenticalGradients()
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case("llama_gqa"), "expected.safetensors"));
        var batch = BatchOf(expected);
        float[][] Grads(bool recompute)
        {
            using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")).OnTestBackend();
            model.SetTrainable(true);
            model.GradientCheckpointing = recompute;
            model.ForwardBackward(batch);
            return model.Parameters().Select(p => p.Grad!.ToFloatArray()).ToArray();
        }

        var plain = Grads(false);
        var recomputed = Grads(true);
        Assert.Equal(plain.Length, recomputed.Length);
        for (int i = 0; i < plain.Length; i++)
        {
            Assert.Equal(plain[i], recomputed[i]);
        }
    }

    internal static CausalLmBatch BatchOf(SafeTensorsFile expected)
    {
        var shape = expected.Tensors["input_ids"].Shape;
        int b = shape[0], t = shape[1];
        long[] ids = expected.ReadInt64("input_ids"), labels = expected.ReadInt64("labels");
        var rows = Enumerable.Range(0, b).Select(r => ids.Skip(r * t).Take(t).Select(x => (int)x).ToArray()).ToList();
        var labelRows = Enumerable.Range(0, b).Select(r => (int[]?)labels.Skip(r * t).Take(t).Select(x => (int)x).ToArray()).ToList();
        return CausalLmBatch.FromRows(rows, labelRows);
    }

    /// <summary>max |actual − expected| ≤ tolerance · max |expected|, reporting the worst element.</summary>
    internal static void AssertClose(float[] expected, float[] actual, double tolerance, string what)
    {
        Assert.Equal(expected.Length, actual.Length);
        double scale = expected.Max(x => Math.Abs((double)x));
        Assert.True(scale > 0, $"{what}: reference is all zeros, the comparison would prove nothing");
        int worst = 0;
        double worstErr = 0;
        for (int i = 0; i < expected.Length; i++)
        {
            double err = Math.Abs((double)actual[i] - expected[i]);
            if (!(err <= worstErr))
            {
                (worst, worstErr) = (i, err);
            }
        }

        Assert.True(worstErr <= tolerance * scale, $"{what}: element {worst} is {actual[worst]}, reference {expected[worst]} (error {worstErr:E3} > {tolerance:E1} × scale {scale:E3})");
    }
}
