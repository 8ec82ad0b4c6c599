using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests;
using Microsoft.ML.Lora.Tests.Models;
using Microsoft.ML.Lora.Tests.Training;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.TorchSharp.Tests;

/// <summary>
/// The torch backend against the native engine on the same models and data: training, adapters across
/// backends, QLoRA, mixed precision, merge, export, transfers and device errors.
/// </summary>
public sealed class TorchBackendTests : IDisposable
{
    // Two F32 engines, one model: each step differs by rounding only (~1e-7 relative per op), and AdamW's
    // normalised updates keep such differences from growing: over 20 steps the losses were measured
    // within 9.1e-8 relative of each other; 1e-4 leaves room for other libtorch builds and CPUs.
    private const double CurveTolerance = 1e-4;

    // Logits of one adapter in two F32 engines: rounding only (measured 4.3e-7 of the logits' scale).
    private const double F32Tolerance = 1e-4;

    // BF16 products round both inputs to 8 significant bits (unit roundoff 2^-8 ≈ 3.9e-3) and accumulate in
    // F32. The loss averages those errors over many logits: measured 2.8e-4 relative on llama_gqa with a
    // rank-4 adapter, bound 2e-3. Gradients pass through some ten rounded products each (forward, then
    // backward through two layers and the head), so their errors compound: measured 1.1e-2 … 3.9e-2 of each
    // adapter gradient's L2 norm, bound 8e-2 (twice the worst). A wrong product would be off by O(1).
    private const double Bf16LossTolerance = 2e-3;
    private const double Bf16GradientTolerance = 8e-2;

    private static readonly TorchBackend Torch = (TorchBackend)TestBackend.Current;

    private readonly string root = TrainingTestData.TempDirectory();

    public void Dispose() => Directory.Delete(root, recursive: true);

    [Fact]
    public void TwentyLoraStepsFollowTheNativeLossCurve()
    {
        var native = Train(Backend.Native, out _);
        var torch = Train(Torch, out _);
        Assert.Equal(20, native.Count);
        Assert.True(native[^1] < native[0] * 0.9, $"the run must learn for the comparison to mean anything: {native[0]} -> {native[^1]}");
        for (int i = 0; i < native.Count; i++)
        {
            Assert.True(Math.Abs(torch[i] - native[i]) <= CurveTolerance * native[i], $"step {i + 1}: torch {torch[i]}, native {native[i]}");
        }
    }

    [Fact]
    public void ThreadsSharingTheBackendGetTheLossesEachGetsAlone()
    {
        // Each model trains on its own batches; every thread's index uploads (ids, targets, positions) must
        // stay alive while it works, however many other threads upload at the same time.
        string[] cases = ["llama_gqa", "qwen2_bias", "qwen3", "gemma2"];
        double[] Losses(string name, int round)
        {
            using var model = LlamaForCausalLM.Load(FixturePaths.Case(name)).To(Torch);
            model.SetTrainable(true);
            var losses = new double[12];
            for (int i = 0; i < losses.Length; i++)
            {
                int[] ids = [.. Enumerable.Range(0, 5 + ((i + round) % 4)).Select(j => ((j * 7) + i + round) % model.Config.VocabSize)];
                losses[i] = model.ForwardBackward(CausalLmBatch.FromRows([ids, [.. ids.Reverse()]])).Mean;
            }

            return losses;
        }

        var alone = cases.Select((c, r) => Losses(c, r)).ToArray();
        var together = new double[cases.Length][];
        Parallel.For(0, cases.Length, new ParallelOptions { MaxDegreeOfParallelism = cases.Length }, r => together[r] = Losses(cases[r], r));
        for (int r = 0; r < cases.Length; r++)
        {
            Assert.Equal(alone[r], together[r]);
        }
    }

    [Fact]
    public void AnAdapterTrainedOnTorchLoadsInEitherBackendWithEqualLogits()
    {
        Train(Torch, out string adapter);
        var batch = ReferenceModelTests.BatchOf(Expected("llama_gqa"));
        float[] Logits(Backend backend)
        {
            using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")).To(backend);
            model.LoadAdapter(adapter);
            using var logits = Tensor.Empty(DType.F32, batch.B * batch.T, model.Config.VocabSize);
            model.Forward(batch, logits);
            return logits.ToFloatArray();
        }

        float[] onTorch = Logits(Torch), onNative = Logits(Backend.Native);
        using var plain = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        using var plainLogits = Tensor.Empty(DType.F32, batch.B * batch.T, plain.Config.VocabSize);
        plain.Forward(batch, plainLogits);
        Assert.True(onNative.Zip(plainLogits.ToFloatArray()).Max(p => Math.Abs(p.First - p.Second)) > 1e-3, "the trained adapter must change the logits");
        ReferenceModelTests.AssertClose(onNative, onTorch, F32Tolerance, "adapter logits, torch vs native");
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void QloraOnTorchEqualsLoraOverTheDequantizedWeights(bool doubleQuant)
    {
        var batch = ReferenceModelTests.BatchOf(Expected("llama_gqa"));
        using var qlora = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        qlora.QuantizeNf4(doubleQuant);
        using var lora = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        foreach (var (q, l) in qlora.Parameters().Zip(lora.Parameters()))
        {
            if (q.Value.DType != l.Value.DType)
            {
                l.Swap(q.Value.To(q.Value.DType == DType.NF4 ? DType.F32 : q.Value.DType)).Dispose();
            }
        }

        qlora.To(Torch);
        lora.To(Torch);
        Assert.Equal(DType.NF4, qlora.Layers[0].Mlp.UpProj!.Weight.Value.DType);
        Assert.Equal(Torch, qlora.Layers[0].Mlp.UpProj!.Weight.Value.Backend);
        var qa = qlora.AddAdapter(new LoraOptions { Rank = 4 }, seed: 5);
        var la = lora.AddAdapter(new LoraOptions { Rank = 4 }, seed: 5);
        var random = new Random(6);
        foreach (var (a, b) in qa.Zip(la))
        {
            TestTensors.FillNormal(a.B.Value, random, 0.2);
            Tensor.CopyConverting(a.B.Value, b.B.Value);
        }

        var lossQ = qlora.ForwardBackward(batch);
        var lossL = lora.ForwardBackward(batch);
        Assert.Equal(lossL.Mean, lossQ.Mean, lossL.Mean * 1e-5);
        foreach (var (a, b) in qa.Zip(la))
        {
            ReferenceModelTests.AssertClose(b.A.Grad!.ToFloatArray(), a.A.Grad!.ToFloatArray(), 1e-4, a.A.Name);
            ReferenceModelTests.AssertClose(b.B.Grad!.ToFloatArray(), a.B.Grad!.ToFloatArray(), 1e-4, a.B.Name);
        }

        // The packed weight comes back from the device byte for byte.
        using var host = qlora.Layers[0].Mlp.UpProj!.Weight.Value.ToHost();
        using var again = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        again.QuantizeNf4(doubleQuant);
        Assert.Equal(Nf4.Codes(again.Layers[0].Mlp.UpProj!.Weight.Value), Nf4.Codes(host));
        Assert.Equal(Nf4.BlockAbsmax(again.Layers[0].Mlp.UpProj!.Weight.Value), Nf4.BlockAbsmax(host));
    }

    [Fact]
    public void Bf16ComputeStaysWithinItsStatedToleranceOfF32()
    {
        var bf16 = TorchBackend.Create("cpu", new TorchBackendOptions { Bf16Compute = true });
        var batch = ReferenceModelTests.BatchOf(Expected("llama_gqa"));
        (double Loss, float[][] Grads) Run(Backend backend)
        {
            using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")).To(backend);
            var adapters = model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 2);
            var random = new Random(3);
            foreach (var a in adapters)
            {
                TestTensors.FillNormal(a.B.Value, random, 0.2);
            }

            double loss = model.ForwardBackward(batch).Mean;
            return (loss, adapters.SelectMany(a => new[] { a.A.Grad!.ToFloatArray(), a.B.Grad!.ToFloatArray() }).ToArray());
        }

        var (f32Loss, f32Grads) = Run(Torch);
        var (bf16Loss, bf16Grads) = Run(bf16);
        Assert.NotEqual(f32Loss, bf16Loss);
        Assert.Equal(f32Loss, bf16Loss, f32Loss * Bf16LossTolerance);
        for (int i = 0; i < f32Grads.Length; i++)
        {
            double norm = Math.Sqrt(f32Grads[i].Sum(x => (double)x * x));
            double err = Math.Sqrt(f32Grads[i].Zip(bf16Grads[i]).Sum(p => (double)(p.First - p.Second) * (p.First - p.Second)));
            Assert.True(norm > 0 && err <= Bf16GradientTolerance * norm, $"adapter gradient {i}: BF16 differs from F32 by {err / norm:E2} of its norm (bound {Bf16GradientTolerance})");
        }
    }

    [Fact]
    public void MergeOnTorchKeepsTheAdaptedOutputAndUnmergeRestoresTheWeightBitForBit()
    {
        var batch = ReferenceModelTests.BatchOf(Expected("qwen2_bias"));
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias")).To(Torch);
        var original = model.Layers[0].SelfAttn.QProj!.Weight.Value.ToFloatArray();
        var adapters = model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 1);
        var random = new Random(4);
        foreach (var a in adapters)
        {
            TestTensors.FillNormal(a.B.Value, random, 0.3);
        }

        var adapted = model.Forward(batch).Mean;
        model.MergeAdapter();
        Assert.Equal(adapted, model.Forward(batch).Mean, adapted * 1e-5);
        model.UnmergeAdapter();
        Assert.Equal(original, model.Layers[0].SelfAttn.QProj!.Weight.Value.ToFloatArray());
    }

    [Fact]
    public void OnnxExportOfATorchModelIsTheNativeModelsFile()
    {
        string Export(Backend backend)
        {
            using var model = LlamaForCausalLM.Load(FixturePaths.Case("mistral")).To(backend);
            model.AddAdapter(new LoraOptions { Rank = 2 }, seed: 9);
            string path = Path.Combine(root, backend.Name + ".onnx");
            LlamaOnnxExporter.Export(model, path);
            return path;
        }

        Assert.Equal(File.ReadAllBytes(Export(Backend.Native)), File.ReadAllBytes(Export(Torch)));
    }

    [Fact]
    public void ATrainingStepMovesOnlyTheBatchInAndTheLossAndNormOut()
    {
        var torch = TorchBackend.Create("cpu");
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")).To(torch);
        model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 1);
        var counts = new List<(long In, long Out)>();
        var options = new TrainingOptions { LearningRate = 1e-3, BatchSize = 4, MaxSteps = 3, Seed = 1 };
        using var trainer = new Trainer(model, options);
        trainer.Train(TrainingTestData.Rows(12, seed: 2), null, new ProgressLog(_ => counts.Add((torch.HostToDeviceCopies, torch.DeviceToHostCopies))));
        Assert.Equal(3, counts.Count);

        // Steps 2 and 3 (tables and masks are cached after step 1): input ids and targets in; the loss
        // sum and the squared gradient norm out.
        for (int i = 1; i < counts.Count; i++)
        {
            Assert.Equal(2, counts[i].In - counts[i - 1].In);
            Assert.Equal(2, counts[i].Out - counts[i - 1].Out);
        }
    }

    [Fact]
    public void CudaOnAMachineWithoutOneIsOneClearError()
    {
        var e = Assert.Throws<TorchBackendUnavailableException>(() => TorchBackend.Create("cuda"));
        Assert.Contains("no CUDA device", e.Message, StringComparison.Ordinal);
        Assert.Contains("0 devices seen", e.Message, StringComparison.Ordinal);
        Assert.Contains("TorchSharp-cuda-linux", e.Message, StringComparison.Ordinal);
        Assert.Throws<TorchBackendUnavailableException>(() => TorchBackend.Create("cuda:1"));
        Assert.Contains("unknown device 'gpu'", Assert.Throws<ArgumentException>(() => TorchBackend.Create("gpu")).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ThreadsIsLibtorchsIntraOpPool()
    {
        // Other tests run beside this one, so the count is read and checked, not changed.
        Assert.Equal(global::TorchSharp.torch.get_num_threads(), Torch.Threads);
        int before = Torch.Threads;
        Assert.Throws<ArgumentOutOfRangeException>(() => Torch.Threads = 0);
        Assert.Equal(before, global::TorchSharp.torch.get_num_threads());
    }

    [Fact]
    public void HostAccessToADeviceTensorIsAClearError()
    {
        using var t = Torch.Zeros(DType.F32, 2, 3);
        var e = Assert.Throws<InvalidOperationException>(() => t.AsF32());
        Assert.Contains("lives on torch (cpu)", e.Message, StringComparison.Ordinal);
        Assert.Contains("ToHost()", e.Message, StringComparison.Ordinal);
        Assert.Equal(new float[6], t.ToFloatArray());
    }

    private static Formats.SafeTensorsFile Expected(string name) =>
        Formats.SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));

    // 20 LoRA steps (rank 8, no dropout) from B = 0 on the llama_gqa fixture; returns the step losses and the saved adapter.
    private List<double> Train(Backend backend, out string adapterDirectory)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa")).To(backend);
        model.AddAdapter(new LoraOptions { Rank = 8 }, seed: 3);
        var options = new TrainingOptions { LearningRate = 3e-3, BatchSize = 4, MaxSteps = 20, WarmupSteps = 2, Seed = 7 };
        using var trainer = new Trainer(model, options);
        var result = trainer.Train(TrainingTestData.Rows(40, seed: 8));
        adapterDirectory = Path.Combine(root, "adapter-" + backend.Name);
        model.SaveAdapter(adapterDirectory);
        return [.. result.StepLosses];
    }
}
