using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>A packed batch computes exactly what its examples compute one by one.</summary>
public sealed class PackedBatchTests
{
    // The same F32 operations over the same keys; only GEMM row blocking differs (N changes), which
    // reorders nothing within a dot product: measured equal to ~1e-7 relative.
    private const double Tolerance = 1e-5;

    [Fact]
    public void PackedLossAndGradientsEqualTheSumOverExamples()
    {
        int[][] examples = [[1, 5, 9, 2, 7], [3, 3, 8], [60, 2, 14, 41, 22, 5, 1], [4, 4]];

        // One row holding all four: positions restart per example; no target crosses a boundary.
        var ids = examples.SelectMany(e => e).ToArray();
        var positions = examples.SelectMany(e => Enumerable.Range(0, e.Length)).ToArray();
        var targets = examples.SelectMany(e => e.Skip(1).Append(global::Microsoft.ML.Lora.Tensors.CrossEntropy.IgnoreIndex)).ToArray();
        var packed = new CausalLmBatch(1, ids.Length, ids, targets, positions);

        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")).OnTestBackend();
        model.SetTrainable(true);
        var packedLoss = model.ForwardBackward(packed);
        var packedGrads = model.Parameters().Select(p => p.Grad!.ToFloatArray()).ToList();

        // One by one: the summed losses, and gradients summed with each example's share of the tokens
        // (ForwardBackward averages over its own tokens).
        model.ZeroGrad();
        double sum = 0;
        long tokens = 0;
        var summed = model.Parameters().Select(p => new double[p.Value.Length]).ToList();
        foreach (var e in examples)
        {
            model.ZeroGrad();
            var r = model.ForwardBackward(CausalLmBatch.FromRows([e]));
            sum += r.Sum;
            tokens += r.Tokens;
            foreach (var (p, acc) in model.Parameters().Zip(summed))
            {
                var g = p.Grad!.ToFloatArray();
                for (int i = 0; i < g.Length; i++)
                {
                    acc[i] += g[i] * r.Tokens;
                }
            }
        }

        Assert.Equal(tokens, packedLoss.Tokens);
        Assert.Equal(sum, packedLoss.Sum, sum * Tolerance);
        foreach (var (expected, actual) in summed.Zip(packedGrads))
        {
            ReferenceModelTests.AssertClose(expected.Select(x => (float)(x / tokens)).ToArray(), actual, Tolerance, "packed gradient");
        }
    }
}
