using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>
/// A tiny LlamaForSequenceClassification and a PEFT SEQ_CLS adapter against tests/fixtures/seqcls_llama,
/// written by the independent float64 reference tests/reference/make_seqcls_fixture.py: pooled logits of a
/// right-padded batch, the loss of <see cref="SequenceClassification.TrainingRow"/> rows, and the gradients
/// of score.weight and of every LoRA A/B.
/// </summary>
public sealed class SequenceClassificationReferenceTests
{
    // F32 engine vs float64 reference on a 2-layer model with C = 32: the same bar as ReferenceModelTests
    // (1e-4 of the tensor's largest magnitude; the reductions' error is ~1e-6 of it).
    private const double F32Tolerance = 1e-4;

    // Central differences of the F32 loss: h = 1e-3 keeps the O(h²) truncation under ~0.1% on this smooth
    // loss, and the loss's F32 resolution (~5e-7 on a loss of 4) adds ≤ 2.5e-4 absolute to the quotient;
    // 0.5% of the analytic value (|g| ≥ 0.1 on the entries checked) bounds both.
    private const float FiniteDifferenceStep = 1e-3f;
    private const double FiniteDifferenceTolerance = 0.005;

    internal static string CaseDir => FixturePaths.Case("seqcls_llama");

    internal static string AdapterDir => Path.Combine(CaseDir, "adapter");

    [Fact]
    public void ClassifierConfigLoadsWithLabelsAndPadToken()
    {
        using var model = LlamaForCausalLM.Load(CaseDir).OnTestBackend();
        var c = model.Config;
        Assert.Equal(("LlamaForSequenceClassification", 3, 3), (c.Architecture, c.NumLabels, c.OutputSize));
        Assert.Equal(["negative", "neutral", "positive"], c.Id2Label);
        Assert.Equal(0, c.PadTokenId);
        Assert.Equal("score", model.LmHead.Name);
        Assert.Equal([3, 32], model.LmHead.Weight.Value.Shape.ToArray());
        Assert.Contains(model.Parameters(), p => p.Name == "score.weight");
        Assert.DoesNotContain(model.Parameters(), p => p.Name.StartsWith("lm_head", StringComparison.Ordinal));
    }

    [Fact]
    public void BasePooledLogitsMatchReferenceAcrossBatches()
    {
        using var expected = Expected();
        using var model = LlamaForCausalLM.Load(CaseDir).OnTestBackend();

        // Batch size 2 splits the three rows into two forward passes with different padding.
        var logits = SequenceClassification.Logits(model, Rows(expected), batchSize: 2);
        ReferenceModelTests.AssertClose(expected.ReadFloats("base_pooled_logits"), Flat(logits), F32Tolerance, "base pooled logits");
    }

    [Fact]
    public void AdapterPooledLogitsLossAndGradientsMatchReference()
    {
        using var expected = Expected();
        using var model = LlamaForCausalLM.Load(CaseDir).OnTestBackend();
        var adapters = model.LoadAdapter(AdapterDir, isTrainable: true);
        Assert.Equal(6, adapters.Count);

        var rows = Rows(expected);
        ReferenceModelTests.AssertClose(expected.ReadFloats("pooled_logits"), Flat(SequenceClassification.Logits(model, rows)), F32Tolerance, "adapter pooled logits");

        var batch = TrainingBatch(rows, expected.ReadInt64("labels"));
        var loss = model.ForwardBackward(batch);
        double refLoss = expected.ReadFloats("loss")[0];
        Assert.Equal(3, loss.Tokens);
        Assert.Equal(refLoss, loss.Mean, refLoss * F32Tolerance);

        var score = model.Parameters().Single(p => p.Name == "score.weight");
        Assert.True(score.Trainable);
        ReferenceModelTests.AssertClose(expected.ReadFloats("grad.score.weight"), score.Grad!.ToFloatArray(), F32Tolerance, "grad.score.weight");
        foreach (var a in adapters)
        {
            ReferenceModelTests.AssertClose(expected.ReadFloats($"grad.{a.ModuleName}.lora_A"), a.A.Grad!.ToFloatArray(), F32Tolerance, $"grad {a.ModuleName}.lora_A");
            ReferenceModelTests.AssertClose(expected.ReadFloats($"grad.{a.ModuleName}.lora_B"), a.B.Grad!.ToFloatArray(), F32Tolerance, $"grad {a.ModuleName}.lora_B");
        }

        Assert.Equal(1 + (2 * adapters.Count), expected.Tensors.Keys.Count(static k => k.StartsWith("grad.", StringComparison.Ordinal)));
    }

    [Fact]
    public void ClassificationLossGradientMatchesCentralDifferences()
    {
        using var expected = Expected();
        using var model = LlamaForCausalLM.Load(CaseDir).OnTestBackend();
        var adapters = model.LoadAdapter(AdapterDir, isTrainable: true);
        var batch = TrainingBatch(Rows(expected), expected.ReadInt64("labels"));
        model.ForwardBackward(batch);
        var score = model.Parameters().Single(p => p.Name == "score.weight");
        foreach (var p in new[] { score, adapters[0].A, adapters[^1].B })
        {
            var grad = p.Grad!.ToFloatArray();
            foreach (int i in Enumerable.Range(0, grad.Length).OrderByDescending(i => Math.Abs(grad[i])).Take(2))
            {
                float orig = p.Value.GetFloat(i);
                TestTensors.Edit(p.Value, w => w[i] = orig + FiniteDifferenceStep);
                double up = model.Forward(batch).Mean;
                TestTensors.Edit(p.Value, w => w[i] = orig - FiniteDifferenceStep);
                double down = model.Forward(batch).Mean;
                TestTensors.Edit(p.Value, w => w[i] = orig);
                double fd = (up - down) / (2 * FiniteDifferenceStep);
                Assert.True(Math.Abs(grad[i]) > 0.1, $"{p.Name}[{i}]: gradient {grad[i]} too small for a meaningful check");
                Assert.True(Math.Abs(fd - grad[i]) <= FiniteDifferenceTolerance * Math.Abs(grad[i]), $"{p.Name}[{i}]: analytic {grad[i]}, finite difference {fd}");
            }
        }
    }

    [Fact]
    public void LogitsRejectsCausalLmsAndBadRowsNamingTheRow()
    {
        using var model = LlamaForCausalLM.Load(CaseDir).OnTestBackend();
        var e = Assert.Throws<ArgumentException>(() => SequenceClassification.Logits(model, [[1, 2], [3], [4, 48]], batchSize: 2));
        Assert.Contains("row 2, position 1: token id 48 is outside the vocabulary [0, 48)", e.Message, StringComparison.Ordinal);
        Assert.Contains("row 1 is empty", Assert.Throws<ArgumentException>(() => SequenceClassification.Logits(model, [[1], []])).Message, StringComparison.Ordinal);
        using var causal = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        Assert.Contains("LoadForSequenceClassification", Assert.Throws<ArgumentException>(() => SequenceClassification.Logits(causal, [[1]])).Message, StringComparison.Ordinal);
    }

    internal static SafeTensorsFile Expected() => SafeTensorsFile.Open(Path.Combine(CaseDir, "expected.safetensors"));

    /// <summary>The fixture's rows without their padding.</summary>
    internal static List<int[]> Rows(SafeTensorsFile expected)
    {
        int t = expected.Tensors["input_ids"].Shape[1];
        long[] ids = expected.ReadInt64("input_ids"), lengths = expected.ReadInt64("lengths");
        return lengths.Select((n, r) => ids.Skip(r * t).Take((int)n).Select(static x => (int)x).ToArray()).ToList();
    }

    internal static CausalLmBatch TrainingBatch(IReadOnlyList<int[]> rows, long[] labels)
    {
        var training = rows.Select((ids, r) => SequenceClassification.TrainingRow(ids, (int)labels[r], r + 1)).ToList();
        return CausalLmBatch.FromRows(training.Select(static r => r.InputIds).ToList(), training.Select(static r => r.Labels).ToList());
    }

    internal static float[] Flat(float[][] rows) => rows.SelectMany(static r => r).ToArray();
}
