using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>QLoRA is LoRA over the dequantized weights; merging dequantizes.</summary>
public sealed class QloraTests
{
    [Fact]
    public void ACancelledQuantizationStopsBeforeTheNextLayer()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.Throws<OperationCanceledException>(() => model.QuantizeNf4(doubleQuant: true, cancelled.Token));
        Assert.All(model.Layers.SelectMany(l => l.Projections()), l => Assert.Equal(DType.F32, l.Weight.Value.DType));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QloraGradientsEqualLoraGradientsOverTheDequantizedWeights(bool doubleQuant)
    {
        var batch = CausalLmBatch.FromRows([[1, 5, 9, 2, 7, 7, 30], [3, 3, 8, 60]]);
        using var qlora = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        qlora.QuantizeNf4(doubleQuant);
        Assert.All(qlora.Layers.SelectMany(l => l.Projections()), l => Assert.Equal(DType.NF4, l.Weight.Value.DType));
        Assert.Equal(DType.BF16, qlora.EmbedTokens.Value.DType);

        // The same model with every NF4 weight dequantized to F32 (and the same BF16 embedding / head).
        using var lora = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        foreach (var (q, l) in qlora.Parameters().Zip(lora.Parameters()))
        {
            Assert.Equal(q.Name, l.Name);
            if (q.Value.DType != l.Value.DType)
            {
                l.Swap(q.Value.To(q.Value.DType == DType.NF4 ? DType.F32 : q.Value.DType)).Dispose();
            }
        }

        var qa = qlora.AddAdapter(new LoraOptions { Rank = 4, Dropout = 0.1 }, seed: 5);
        var la = lora.AddAdapter(new LoraOptions { Rank = 4, Dropout = 0.1 }, seed: 5);
        var random = new Random(6);
        foreach (var (a, b) in qa.Zip(la))
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.2);
            a.B.Value.AsF32().CopyTo(b.B.Value.AsF32());
        }

        qlora.DropoutSeed = lora.DropoutSeed = 17;
        var lossQ = qlora.ForwardBackward(batch);
        var lossL = lora.ForwardBackward(batch);

        // The NF4 GEMM packs the dequantized values of the same weight: results are bit-identical.
        Assert.Equal(lossL, lossQ);
        foreach (var (q, l) in qlora.TrainableParameters().Zip(lora.TrainableParameters()))
        {
            Assert.Equal(l.Name, q.Name);
            Assert.Equal(l.Grad!.ToFloatArray(), q.Grad!.ToFloatArray());
        }
    }

    [Fact]
    public void MergingIntoAnNf4BaseDequantizesAndKeepsTheFunction()
    {
        var batch = CausalLmBatch.FromRows([[1, 5, 9, 2, 7], [3, 3, 8]]);
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.QuantizeNf4(doubleQuant: true);
        var adapters = model.AddAdapter(new LoraOptions { Rank = 2 });
        var random = new Random(7);
        foreach (var a in adapters)
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.2);
        }

        var adapted = LoraAdapterTests.Logits(model, batch);
        model.MergeAdapter();
        Assert.All(model.Layers.SelectMany(l => l.Projections()), l => Assert.Equal(DType.F32, l.Weight.Value.DType));
        ReferenceModelTests.AssertClose(adapted, LoraAdapterTests.Logits(model, batch), 1e-5, "merged NF4 logits");
        model.UnmergeAdapter();
        Assert.All(model.Layers.SelectMany(l => l.Projections()), l => Assert.Equal(DType.NF4, l.Weight.Value.DType));
        Assert.Equal(adapted, LoraAdapterTests.Logits(model, batch));
        Assert.Throws<InvalidOperationException>(() => model.Layers[0].SelfAttn.QProj!.Weight.Trainable = true);
    }
}
