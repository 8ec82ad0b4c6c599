using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.TorchSharp;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.GpuCheck;

/// <summary>
/// Loads libtorch on the device and runs every operation a training step uses — F32 and NF4 products,
/// attention, norms, cross-entropy, their backwards, clipping and AdamW — on a tiny random model, twice:
/// on the native CPU backend and on the torch device. The losses before and after two optimizer steps must
/// agree. This is what eng/gpu-check.sh runs first to decide whether a native library route works.
/// </summary>
internal static class Probe
{
    // Same F32 arithmetic in another summation order (cuBLAS/libtorch vs our kernels) over K ≤ 176, 2 layers:
    // measured ~1e-6 relative on the loss here; 1e-4 leaves room for device reductions without hiding a wrong op.
    private const double LossTolerance = 1e-4;

    public static int Run(TextWriter output, string device)
    {
        var backend = TorchBackend.Create(device);
        int failures = 0;
        foreach (bool qlora in new[] { false, true })
        {
            double[] native = Losses(null, qlora), torch = Losses(backend, qlora);
            double worst = native.Zip(torch, static (n, t) => Math.Abs(n - t) / Math.Abs(n)).Max();
            bool ok = worst <= LossTolerance;
            failures += ok ? 0 : 1;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"probe {(ok ? "ok" : "FAIL")} {(qlora ? "qlora" : "lora")} device={backend.Device} losses(native)=[{string.Join(", ", native.Select(static x => x.ToString("F6", CultureInfo.InvariantCulture)))}] losses(torch)=[{string.Join(", ", torch.Select(static x => x.ToString("F6", CultureInfo.InvariantCulture)))}] worst_rel={worst:E2}"));
        }

        return failures;
    }

    // Loss of a forward-backward, then of two more after each of two AdamW steps.
    private static double[] Losses(Backend? backend, bool qlora)
    {
        var config = LlamaConfig.Create(vocabSize: 96, hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
        using var model = LlamaForCausalLM.CreateRandom(config, DType.F32, seed: 5);
        if (qlora)
        {
            model.QuantizeNf4(doubleQuant: true);
        }

        model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 6);
        if (backend is not null)
        {
            model.To(backend);
        }

        // B starts at zero: one step first makes the adapters' contribution non-zero, so the later losses test it.
        var random = new Random(7);
        var batch = CausalLmBatch.FromRows([.. Enumerable.Range(0, 2).Select(_ => Enumerable.Range(0, 24).Select(_ => random.Next(96)).ToArray())]);
        var trainable = model.TrainableParameters().ToList();
        using var optimizer = new AdamW(trainable);
        var losses = new List<double>();
        for (int step = 0; step < 3; step++)
        {
            model.ZeroGrad();
            losses.Add(model.ForwardBackward(batch).Mean);
            Gradients.ClipGlobalNorm(trainable, 1.0);
            optimizer.Step(1e-2);
        }

        return [.. losses];
    }
}
