using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.TorchSharp;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// <c>lora bench</c>: training-step throughput of a random model, measured in one run with the modes
/// interleaved step by step (the machines are shared; ratios within a run are the result, each the
/// median over rounds of the per-round ratio to the frozen step):
/// <list type="bullet">
/// <item><c>frozen</c>: forward+backward with every base weight frozen, the work of a LoRA step besides the adapters;</item>
/// <item><c>lora</c> (with <c>--rank</c>): the same with adapters on every linear layer, their gradients included;</item>
/// <item><c>qlora</c> (with <c>--quantize nf4</c>): the LoRA step over NF4 base weights.</item>
/// </list>
/// Memory per mode is its weights and gradients plus the tensor high-water mark of its step (activations, workspace, gradients),
/// measured on the native backend only: the torch backend's tensors are libtorch's, outside <see cref="NativePool"/>.
/// </summary>
internal static class BenchCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        Option<int> Int(string name, int value, string description) => new(name) { Description = description, DefaultValueFactory = _ => value };
        var layers = Int("--layers", 8, "decoder layers");
        var hidden = Int("--hidden", 512, "hidden size C");
        var heads = Int("--heads", 8, "attention heads NH");
        var kvHeads = Int("--kv-heads", 4, "key/value heads NKV");
        var intermediate = Int("--intermediate", 1408, "MLP intermediate size");
        var vocab = Int("--vocab", 8192, "vocabulary size V");
        var seq = Int("--seq", 256, "tokens per sequence T");
        var batch = Int("--batch", 4, "sequences per step B");
        var steps = Int("--steps", 5, "timed steps per mode");
        var warmup = Int("--warmup", 1, "untimed steps per mode first");
        var threads = Int("--threads", Environment.ProcessorCount, "CPU threads");
        var rank = Int("--rank", 0, "LoRA rank r: also time a LoRA step (all linear layers)");
        var dtype = new Option<string>("--dtype") { Description = "base weight dtype: f32 or bf16", DefaultValueFactory = _ => "f32" };
        var quantize = new Option<string?>("--quantize") { Description = "nf4: also time the LoRA step over NF4 base weights (QLoRA)" };
        var doubleQuant = new Option<bool>("--double-quant") { Description = "NF4 with double quantization of the absmax constants" };
        var recompute = new Option<bool>("--recompute") { Description = "recompute activations in backward (gradient checkpointing)" };
        var generate = Int("--generate", 0, "also time generating N tokens (greedy, batch 1) after a --seq/2-token prompt, with and without the KV cache");
        var backendOptions = new BackendOptions();
        var command = new Command("bench", "Print training-step tokens/s (frozen pass, LoRA step, QLoRA step) of a model shape, and their ratios.")
        {
            layers, hidden, heads, kvHeads, intermediate, vocab, seq, batch, steps, warmup, threads, rank, dtype, quantize, doubleQuant, recompute, generate,
        };
        backendOptions.AddTo(command, withBf16Compute: true);
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            var config = LlamaConfig.Create(
                vocabSize: parse.GetValue(vocab),
                hiddenSize: parse.GetValue(hidden),
                intermediateSize: parse.GetValue(intermediate),
                numHiddenLayers: parse.GetValue(layers),
                numAttentionHeads: parse.GetValue(heads),
                numKeyValueHeads: parse.GetValue(kvHeads));
            int b = parse.GetValue(batch), t = parse.GetValue(seq), timed = parse.GetValue(steps), r = parse.GetValue(rank);
            string? quant = parse.GetValue(quantize);
            if (b < 1 || t < 2 || timed < 1 || parse.GetValue(warmup) < 0 || r < 0)
            {
                throw new ArgumentException("--batch and --steps must be at least 1, --seq at least 2, --warmup and --rank at least 0");
            }

            if ((long)b * t > 1 << 24 || r > LoraOptions.MaxRank)
            {
                throw new ArgumentException($"--batch {b} × --seq {t} must be at most {1 << 24} tokens a step and --rank at most {LoraOptions.MaxRank}");
            }

            if (quant is not null && (quant != "nf4" || r == 0))
            {
                throw new ArgumentException($"--quantize takes nf4 and needs --rank (QLoRA trains adapters); got '{quant}' with rank {r}");
            }

            var backend = backendOptions.Create(parse, parse.GetValue(threads));

            var random = new Random(2);
            var rows = Enumerable.Range(0, b).Select(_ => Enumerable.Range(0, t).Select(_ => random.Next(config.VocabSize)).ToArray()).ToList();
            var data = CausalLmBatch.FromRows(rows);
            var modes = new List<Mode>();
            try
            {
                var baseModel = LlamaForCausalLM.CreateRandom(config, DTypes.Parse(parse.GetValue(dtype)!), seed: 1);
                modes.Add(new Mode("frozen", baseModel, () => baseModel.SetActiveAdapter(null), Owns: true));
                baseModel.To(backend);
                baseModel.GradientCheckpointing = parse.GetValue(recompute);
                if (r > 0)
                {
                    baseModel.AddAdapter(new LoraOptions { Rank = r }, seed: 3);
                    modes.Add(new Mode($"lora r={r}", baseModel, () => baseModel.SetActiveAdapter(LoraModelExtensions.DefaultAdapterName), Owns: false));
                }

                if (quant is not null)
                {
                    var q = LlamaForCausalLM.CreateRandom(config, DType.F32, seed: 1);
                    modes.Add(new Mode($"qlora r={r}", q, () => { }, Owns: true));
                    q.GradientCheckpointing = parse.GetValue(recompute);
                    q.QuantizeNf4(parse.GetValue(doubleQuant));
                    q.To(backend);
                    q.AddAdapter(new LoraOptions { Rank = r }, seed: 3);
                }

                for (int i = 0; i < parse.GetValue(warmup); i++)
                {
                    foreach (var m in modes)
                    {
                        m.Step(data);
                    }
                }

                foreach (var m in modes)
                {
                    m.Reset();
                }

                for (int i = 0; i < timed; i++)
                {
                    foreach (var m in modes)
                    {
                        m.Step(data);
                    }
                }

                var inv = CultureInfo.InvariantCulture;
                bool measured = backend.IsHost;
                foreach (var m in modes)
                {
                    double tokensPerSecond = b * t / m.MedianSeconds;
                    string peak = measured ? string.Create(inv, $"{m.PeakBytes / 1048576.0:F1}") : "n/a";
                    output.WriteLine(string.Create(inv, $"{m.Name,-12} tokens/s={tokensPerSecond:F1} ms/step={m.MedianSeconds * 1000:F1} x_frozen={m.MedianRatioTo(modes[0]):F3} weights_mb={m.WeightBytes / 1048576.0:F1} peak_mb={peak} loss={m.LastLoss:F4}"));
                }

                string compute = backend is TorchBackend { Options.Bf16Compute: true } ? " bf16_compute" : string.Empty;
                output.WriteLine(string.Create(inv, $"shape: layers={config.NumHiddenLayers} hidden={config.HiddenSize} heads={config.NumAttentionHeads}/{config.NumKeyValueHeads} intermediate={config.IntermediateSize} vocab={config.VocabSize} batch={b} seq={t} steps={timed} threads={backend.Threads} backend={backend.Name}:{backend.Device}{compute}"));
                if (!measured)
                {
                    output.WriteLine($"memory: peak_mb not measured on the {backend.Name} backend (its tensors are libtorch's, outside the native pool); weights_mb is weights and gradients by dtype size");
                }

                if (parse.GetValue(generate) is > 0 and int count)
                {
                    TimeGeneration(output, modes[0].Model, rows[0][..(t / 2)], count);
                }

                if (modes.Count == 3)
                {
                    string peakRatio = measured ? string.Create(inv, $"{modes[2].PeakBytes / (double)modes[1].PeakBytes:F3}") : "n/a";
                    output.WriteLine(string.Create(inv, $"qlora_peak/lora_peak={peakRatio} nf4_bytes_per_base_param={modes[2].Model.Linears().Where(l => l.Name != "lm_head").Sum(l => l.Weight.Value.ByteLength) / (double)modes[2].Model.Linears().Where(l => l.Name != "lm_head").Sum(l => l.Weight.Value.Length):F4}"));
                }

                return 0;
            }
            finally
            {
                foreach (var m in modes.Where(static m => m.Owns))
                {
                    m.Model.Dispose();
                }
            }
        }));
        return command;
    }

    // Greedy generation of `count` tokens, cached then uncached; the uncached run recomputes the whole
    // sequence per token (cost grows with its length), the cached one only the new token.
    private static void TimeGeneration(TextWriter output, LlamaForCausalLM model, int[] prompt, int count)
    {
        model.SetActiveAdapter(null);
        var results = new List<(string Name, double TokensPerSecond, List<int> Tokens)>();
        foreach (bool cache in new[] { true, false })
        {
            var options = new GenerationOptions { MaxNewTokens = count, UseCache = cache };
            Generator.Generate(model, prompt, options with { MaxNewTokens = 2 }).ToList();
            var clock = Stopwatch.StartNew();
            var tokens = Generator.Generate(model, prompt, options).ToList();
            results.Add((cache ? "kv-cache" : "no-cache", tokens.Count / clock.Elapsed.TotalSeconds, tokens));
        }

        foreach (var (name, tps, _) in results)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"generate {name,-8} tokens/s={tps:F1} prompt={prompt.Length} new={count}"));
        }

        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"generate speedup={results[0].TokensPerSecond / results[1].TokensPerSecond:F2} same_tokens={results[0].Tokens.SequenceEqual(results[1].Tokens)}"));
    }

    private sealed record Mode(string Name, LlamaForCausalLM Model, Action Activate, bool Owns)
    {
        private readonly List<double> seconds = [];

        public double MedianSeconds => seconds.Order().ElementAt(seconds.Count / 2);

        // Median over steps of this step's time / the baseline's time in the same round: neighbouring
        // steps share the machine's load, so drifting load cancels in each ratio.
        public double MedianRatioTo(Mode baseline) =>
            seconds.Zip(baseline.seconds, static (a, b) => a / b).Order().ElementAt(seconds.Count / 2);

        public long PeakBytes { get; private set; }

        public long WeightBytes => Model.Parameters().Sum(static p => p.Value.ByteLength + (p.Grad?.ByteLength ?? 0));

        public void Reset()
        {
            seconds.Clear();
            PeakBytes = 0;
        }

        public double LastLoss { get; private set; }

        // On a device backend the peak read here is the host pool's, not the step's: the caller prints n/a.
        public void Step(CausalLmBatch data)
        {
            Activate();
            Model.ZeroGrad();
            long baseline = NativePool.LiveBytes;
            NativePool.ResetPeak();
            var clock = Stopwatch.StartNew();
            LastLoss = Model.ForwardBackward(data).Mean;
            seconds.Add(clock.Elapsed.TotalSeconds);
            PeakBytes = Math.Max(PeakBytes, WeightBytes + NativePool.PeakLiveBytes - baseline);
        }
    }
}
