using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>LoRA inside Linear: exactness at B = 0, gradients by the chain rule, merge/unmerge, adapter switching.</summary>
public sealed class LoraAdapterTests
{
    // A LoRA model and the same model with merged weights compute the same function in a different
    // F32 order: a few ulps per layer over 2 layers (measured ~1e-6 of the scale).
    private const double MergedTolerance = 1e-5;

    // Chain-rule identities evaluated in double from F32 gradients of two different computations.
    private const double ChainRuleTolerance = 1e-4;

    [Fact]
    public void ZeroBGivesExactlyTheBaseOutput()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var batch = Batch();
        var baseLogits = Logits(model, batch);
        var adapters = model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 1);
        Assert.Equal(7 * 2, adapters.Count);
        Assert.All(adapters, a => Assert.NotEqual(0f, a.A.Value.AsF32().ToArray().Max(Math.Abs)));
        Assert.Equal(baseLogits, Logits(model, batch));
    }

    [Fact]
    public void AdapterGradientsFollowTheChainRuleThroughTheMergedWeight()
    {
        var batch = Batch();
        using var lora = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = lora.AddAdapter(new LoraOptions { Rank = 3, Alpha = 6, TargetModules = ["q_proj", "v_proj", "down_proj"] }, seed: 2);
        var random = new Random(3);
        foreach (var a in adapters)
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.2);
        }

        Assert.Equal(adapters.SelectMany(a => a.Parameters()).Select(p => p.Name).Order(), lora.TrainableParameters().Select(p => p.Name).Order());
        lora.KeepInputsEmbedsGrad = true;
        var loraLoss = lora.ForwardBackward(batch);

        using var merged = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        merged.KeepInputsEmbedsGrad = true;
        var byName = merged.Linears().ToDictionary(l => l.Name);
        foreach (var a in adapters)
        {
            using var delta = a.Delta();
            var w = byName[a.ModuleName].Weight;
            System.Numerics.Tensors.TensorPrimitives.Add(w.Value.AsF32(), delta.AsF32(), w.Value.AsF32());
            w.Trainable = true;
        }

        var mergedLoss = merged.ForwardBackward(batch);
        Assert.Equal(mergedLoss.Mean, loraLoss.Mean, MergedTolerance * mergedLoss.Mean);
        ReferenceModelTests.AssertClose(merged.InputsEmbedsGrad!.ToFloatArray(), lora.InputsEmbedsGrad!.ToFloatArray(), MergedTolerance, "inputs_embeds grad");

        foreach (var a in adapters)
        {
            // L(W + s·B·A): dB = s·dW·Aᵀ, dA = s·Bᵀ·dW
            var dw = byName[a.ModuleName].Weight.Grad!.ToFloatArray();
            var av = a.A.Value.ToFloatArray();
            var bv = a.B.Value.ToFloatArray();
            int r = a.Rank, oc = a.B.Value.Dim(0), c = a.A.Value.Dim(1);
            var expectB = new float[oc * r];
            var expectA = new float[r * c];
            for (int i = 0; i < oc; i++)
            {
                for (int k = 0; k < r; k++)
                {
                    double sum = 0;
                    for (int j = 0; j < c; j++)
                    {
                        sum += (double)dw[(i * c) + j] * av[(k * c) + j];
                    }

                    expectB[(i * r) + k] = (float)(a.Scale * sum);
                }
            }

            for (int k = 0; k < r; k++)
            {
                for (int j = 0; j < c; j++)
                {
                    double sum = 0;
                    for (int i = 0; i < oc; i++)
                    {
                        sum += (double)bv[(i * r) + k] * dw[(i * c) + j];
                    }

                    expectA[(k * c) + j] = (float)(a.Scale * sum);
                }
            }

            ReferenceModelTests.AssertClose(expectB, a.B.Grad!.ToFloatArray(), ChainRuleTolerance, a.B.Name);
            ReferenceModelTests.AssertClose(expectA, a.A.Grad!.ToFloatArray(), ChainRuleTolerance, a.A.Name);
        }
    }

    [Fact]
    public void MergeMatchesUnmergedAndUnmergeRestoresBitForBit()
    {
        var batch = Batch("qwen2_bias");
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        var adapters = model.AddAdapter(new LoraOptions { Rank = 4, UseRsLora = true }, seed: 4);
        Assert.Equal((float)(32 / Math.Sqrt(4)), adapters[0].Scale);
        var random = new Random(5);
        foreach (var a in adapters)
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.1);
        }

        var before = model.Linears().Select(l => l.Weight.Value.ToFloatArray()).ToList();
        var unmerged = Logits(model, batch);
        using (model.DisableAdapters())
        {
            var baseLogits = Logits(model, batch);
            Assert.True(baseLogits.Zip(unmerged).Max(p => Math.Abs(p.First - p.Second)) > 1e-2, "the adapter must change the output, or merging proves nothing");
        }

        model.MergeAdapter();
        Assert.All(model.Linears().Where(l => l.ActiveAdapter is not null), l => Assert.Equal("default", l.MergedAdapter));
        ReferenceModelTests.AssertClose(unmerged, Logits(model, batch), MergedTolerance, "merged logits");
        Assert.Throws<InvalidOperationException>(() => model.ForwardBackward(batch));

        model.UnmergeAdapter();
        var after = model.Linears().Select(l => l.Weight.Value.ToFloatArray()).ToList();
        for (int i = 0; i < before.Count; i++)
        {
            Assert.Equal(before[i], after[i]);
        }

        Assert.Equal(unmerged, Logits(model, batch));
    }

    [Fact]
    public void MergeRejectsANonFiniteResultAndLeavesTheWeight()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = model.AddAdapter(new LoraOptions { Rank = 2, TargetModules = ["o_proj"] });
        adapters[1].B.Value.AsF32()[3] = float.PositiveInfinity;
        var before = model.Linears().Select(l => l.Weight.Value.ToFloatArray()).ToList();
        var e = Assert.Throws<InvalidOperationException>(() => model.MergeAdapter());
        Assert.Contains("model.layers.1.self_attn.o_proj", e.Message, StringComparison.Ordinal);
        Assert.All(model.Linears(), l => Assert.Null(l.MergedAdapter));
        Assert.Equal(before, model.Linears().Select(l => l.Weight.Value.ToFloatArray()).ToList());
    }

    [Fact]
    public void MergeAndUnloadLeavesAPlainModelWithTheMergedFunction()
    {
        var batch = Batch("llama_tied_headdim");
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_tied_headdim"), DType.BF16);
        var adapters = model.AddAdapter(new LoraOptions { Rank = 2 });
        var random = new Random(6);
        foreach (var a in adapters)
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.1);
        }

        var adapted = Logits(model, batch);
        model.MergeAndUnload(DType.F32);
        Assert.Empty(model.Adapters());
        Assert.Empty(model.TrainableParameters());
        Assert.All(model.Layers.SelectMany(l => l.Projections()), l => Assert.Equal(DType.F32, l.Weight.Value.DType));
        ReferenceModelTests.AssertClose(adapted, Logits(model, batch), MergedTolerance, "merged-and-unloaded logits");
    }

    [Fact]
    public void SeveralAdaptersOneActiveAtATime()
    {
        var batch = Batch();
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var first = model.AddAdapter(new LoraOptions { Rank = 2 }, "first", seed: 1);
        var second = model.AddAdapter(new LoraOptions { Rank = 3, TargetModules = ["mlp.up_proj"] }, "second", seed: 2);
        var random = new Random(7);
        foreach (var a in first.Concat(second))
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.2);
        }

        Assert.All(second.SelectMany(a => a.Parameters()), p => Assert.True(p.Trainable));
        Assert.All(first.SelectMany(a => a.Parameters()), p => Assert.False(p.Trainable));
        var withSecond = Logits(model, batch);
        model.SetActiveAdapter("first");
        Assert.All(first.SelectMany(a => a.Parameters()), p => Assert.True(p.Trainable));
        Assert.All(second.SelectMany(a => a.Parameters()), p => Assert.False(p.Trainable));
        var withFirst = Logits(model, batch);
        Assert.NotEqual(withFirst, withSecond);
        model.SetActiveAdapter(null);
        var none = Logits(model, batch);
        using (var plain = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")))
        {
            Assert.Equal(Logits(plain, batch), none);
        }

        Assert.Throws<ArgumentException>(() => model.SetActiveAdapter("third"));
        Assert.Throws<ArgumentException>(() => model.AddAdapter(new LoraOptions(), "first"));
    }

    [Fact]
    public void DropoutMasksAreSeededOnlyInTrainingAndRecomputedExactly()
    {
        var batch = Batch();
        float[][] Grads(bool recompute, ulong seed)
        {
            using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
            var adapters = model.AddAdapter(new LoraOptions { Rank = 4, Dropout = 0.3 }, seed: 9);
            var random = new Random(8);
            foreach (var a in adapters)
            {
                LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.2);
            }

            model.GradientCheckpointing = recompute;
            model.DropoutSeed = seed;
            model.ForwardBackward(batch);
            return model.TrainableParameters().Select(p => p.Grad!.ToFloatArray()).ToArray();
        }

        var plain = Grads(false, 11);
        Assert.Equal(plain, Grads(true, 11));
        Assert.NotEqual(plain, Grads(false, 12));

        // Inference passes apply no dropout: the output does not depend on the seed.
        using var eval = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        eval.AddAdapter(new LoraOptions { Rank = 4, Dropout = 0.5 }, seed: 9);
        eval.DropoutSeed = 1;
        var l1 = Logits(eval, batch);
        eval.DropoutSeed = 2;
        Assert.Equal(l1, Logits(eval, batch));
    }

    [Fact]
    public void DropoutGradientMatchesFiniteDifferencesOfTheMaskedLoss()
    {
        // Fixed seed → fixed mask → the loss is a smooth function of A. Central differences in F32:
        // at step 1e-2 the O(h²) truncation error was 3.6% on these steep entries (|grad| ≈ 6); at 1e-3
        // it is ~0.04%, and the loss's F32 resolution (~5e-7) adds ~3e-4 absolute. 0.2% bounds both.
        const float Step = 1e-3f;
        const double Tolerance = 0.002;
        var batch = Batch();
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = model.AddAdapter(new LoraOptions { Rank = 2, Dropout = 0.25, TargetModules = ["gate_proj"] }, seed: 3);
        var random = new Random(4);
        foreach (var a in adapters)
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.5);
        }

        model.DropoutSeed = 77;
        model.ForwardBackward(batch);
        var target = adapters[0].A;
        var grad = target.Grad!.ToFloatArray();
        foreach (int i in Enumerable.Range(0, grad.Length).OrderByDescending(i => Math.Abs(grad[i])).Take(3))
        {
            var w = target.Value.AsF32();
            float orig = w[i];
            w[i] = orig + Step;
            double up = model.ForwardBackward(batch).Mean;
            w[i] = orig - Step;
            double down = model.ForwardBackward(batch).Mean;
            w[i] = orig;
            double fd = (up - down) / (2 * Step);
            Assert.True(Math.Abs(fd - grad[i]) <= Tolerance * Math.Abs(grad[i]), $"element {i}: analytic {grad[i]}, finite difference {fd}");
        }
    }

    private static CausalLmBatch Batch(string fixtureCase = "llama_gqa")
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(fixtureCase), "expected.safetensors"));
        return ReferenceModelTests.BatchOf(expected);
    }

    internal static float[] Logits(LlamaForCausalLM model, CausalLmBatch batch)
    {
        using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, model.Config.VocabSize);
        model.Forward(batch, logits);
        return logits.ToFloatArray();
    }
}

/// <summary>Gaussian fill for tests (B must be non-zero for gradients of A to be non-trivial).</summary>
internal static class LoraInitializerAccess
{
    public static void Fill(Span<float> span, Random random, double std) => RandomFill.Normal(span, random, std);
}
