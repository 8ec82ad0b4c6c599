using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.TorchSharp;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.GpuCheck;

/// <summary>
/// One training-step benchmark of one mode on the torch backend, the same step as eng/gpu/bench_peft.py's:
/// forward + backward of the mean token loss, global-norm clip at 1.0, AdamW (lr 2e-4, no weight decay) on the
/// LoRA parameters. Modes: <c>lora</c> (BF16 base weights), <c>lora-ckpt</c> (the same with gradient
/// checkpointing), <c>qlora</c> (NF4 base weights with double quantization, BF16 embedding and head).
/// LoRA r on every linear layer but lm_head, α = 2r, dropout 0. The model is a folder written by
/// <see cref="RandomModel"/> (the PEFT side loads the same one) or, without one, the engine's random model. One mode per process, so that the memory read
/// after it (<see cref="DeviceMemory"/>) is that mode's alone. Prints one <c>result</c> line of key=value pairs.
/// </summary>
internal static class Bench
{
    public static readonly string[] Modes = ["lora", "lora-ckpt", "qlora"];

    public static int Run(TextWriter output, BenchArgs a)
    {
        var setup = Stopwatch.StartNew();
        var backend = TorchBackend.Create(a.Device, new TorchBackendOptions { Bf16Compute = a.Bf16Compute });
        bool cuda = backend.Device.StartsWith("cuda", StringComparison.Ordinal);
        using var model = a.Model is { } folder
            ? LlamaForCausalLM.Load(folder, DType.BF16)
            : LlamaForCausalLM.CreateRandom(a.Config(), DType.BF16, seed: 1);
        var config = model.Config;
        var batch = CausalLmBatch.FromRows([.. Enumerable.Range(0, a.Batch).Select(r => RandomModel.Tokens(r, a.Seq, config.VocabSize))]);
        if (a.Mode == "qlora")
        {
            model.QuantizeNf4(doubleQuant: true);
        }

        model.GradientCheckpointing = a.Mode == "lora-ckpt";
        model.AddAdapter(new LoraOptions { Rank = a.Rank, Alpha = 2 * a.Rank }, seed: 3);
        model.To(backend);
        var trainable = model.TrainableParameters().ToList();
        using var optimizer = new AdamW(trainable, weightDecay: 0.0);
        double setupSeconds = setup.Elapsed.TotalSeconds;

        long peak = 0;
        var seconds = new List<double>();
        double firstLoss = double.NaN, lastLoss = double.NaN;
        for (int step = 0; step < a.Warmup + a.Steps; step++)
        {
            var clock = Stopwatch.StartNew();
            model.ZeroGrad();
            double loss = model.ForwardBackward(batch).Mean;
            Gradients.ClipGlobalNorm(trainable, 1.0);
            optimizer.Step(2e-4);
            if (cuda)
            {
                global::TorchSharp.torch.cuda.synchronize();
            }

            double elapsed = clock.Elapsed.TotalSeconds;
            peak = Math.Max(peak, (cuda ? DeviceMemory.CudaUsedBytes() : DeviceMemory.HostPeakBytes()) ?? 0);
            if (step == 0)
            {
                firstLoss = loss;
            }

            lastLoss = loss;
            if (step >= a.Warmup)
            {
                seconds.Add(elapsed);
            }
        }

        double median = seconds.Order().ElementAt(seconds.Count / 2);
        long tokens = (long)a.Batch * a.Seq;
        var inv = CultureInfo.InvariantCulture;
        output.WriteLine(string.Create(inv, $"result impl=dotnet-torch mode={a.Mode} device={backend.Device} bf16_compute={a.Bf16Compute.ToString().ToLowerInvariant()} tokens_per_s={tokens / median:F1} ms_step={median * 1000:F1} mem_mb={(peak > 0 ? (peak / 1048576.0).ToString("F0", inv) : "nan")} mem_kind={(cuda ? "device_used" : "host_peak_rss")} trainable={trainable.Sum(static p => p.Value.Length)} loss_first={firstLoss:F4} loss_last={lastLoss:F4} setup_s={setupSeconds:F1} steps={a.Steps}"));
        return double.IsFinite(lastLoss) ? 0 : 1;
    }
}

/// <summary>The benchmark's options (names as eng/gpu/bench_peft.py's).</summary>
internal sealed record BenchArgs
{
    public string Device { get; init; } = "cpu";

    /// <summary>A model folder (from <c>make-model</c>) to load; when null, a random model of the shape below.</summary>
    public string? Model { get; init; }

    public string Mode { get; init; } = "lora";

    public int Layers { get; init; } = 2;

    public int Hidden { get; init; } = 256;

    public int Heads { get; init; } = 4;

    public int KvHeads { get; init; } = 2;

    public int Intermediate { get; init; } = 688;

    public int Vocab { get; init; } = 4096;

    public int Seq { get; init; } = 128;

    public int Batch { get; init; } = 2;

    public int Steps { get; init; } = 3;

    public int Warmup { get; init; } = 1;

    public int Rank { get; init; } = 16;

    public bool Bf16Compute { get; init; } = true;

    public LlamaConfig Config() => LlamaConfig.Create(
        vocabSize: Vocab,
        hiddenSize: Hidden,
        intermediateSize: Intermediate,
        numHiddenLayers: Layers,
        numAttentionHeads: Heads,
        numKeyValueHeads: KvHeads,
        maxPositionEmbeddings: Math.Max(2048, Seq));
}
