using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// <c>lora bench</c>: forward+backward throughput of a random model with every base weight frozen —
/// the work of a LoRA step besides the adapters (input gradients flow through every layer, no weight gradients).
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
        var steps = Int("--steps", 5, "timed steps");
        var warmup = Int("--warmup", 1, "untimed steps first");
        var threads = Int("--threads", Environment.ProcessorCount, "CPU threads");
        var dtype = new Option<string>("--dtype") { Description = "base weight dtype: f32 or bf16", DefaultValueFactory = _ => "f32" };
        var recompute = new Option<bool>("--recompute") { Description = "recompute activations in backward (gradient checkpointing)" };
        var command = new Command("bench", "Print forward+backward tokens/s of a model shape with frozen base weights.")
        {
            layers, hidden, heads, kvHeads, intermediate, vocab, seq, batch, steps, warmup, threads, dtype, recompute,
        };
        command.SetAction(parse => CommandErrors.Guard(error, () =>
        {
            CpuParallel.Threads = parse.GetValue(threads);
            var config = LlamaConfig.Create(
                vocabSize: parse.GetValue(vocab),
                hiddenSize: parse.GetValue(hidden),
                intermediateSize: parse.GetValue(intermediate),
                numHiddenLayers: parse.GetValue(layers),
                numAttentionHeads: parse.GetValue(heads),
                numKeyValueHeads: parse.GetValue(kvHeads));
            int b = parse.GetValue(batch), t = parse.GetValue(seq), timed = parse.GetValue(steps);
            if (b < 1 || t < 2 || timed < 1 || parse.GetValue(warmup) < 0)
            {
                throw new ArgumentException("--batch and --steps must be at least 1, --seq at least 2, --warmup at least 0");
            }

            using var model = LlamaForCausalLM.CreateRandom(config, DTypes.Parse(parse.GetValue(dtype)!), seed: 1);
            model.GradientCheckpointing = parse.GetValue(recompute);
            var random = new Random(2);
            var rows = Enumerable.Range(0, b).Select(_ => Enumerable.Range(0, t).Select(_ => random.Next(config.VocabSize)).ToArray()).ToList();
            var data = CausalLmBatch.FromRows(rows);

            for (int i = 0; i < parse.GetValue(warmup); i++)
            {
                model.ForwardBackward(data);
            }

            var clock = Stopwatch.StartNew();
            double loss = 0;
            for (int i = 0; i < timed; i++)
            {
                loss = model.ForwardBackward(data).Mean;
            }

            double seconds = clock.Elapsed.TotalSeconds;
            double tokensPerSecond = (double)b * t * timed / seconds;
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"tokens/s={tokensPerSecond:F1} ms/step={seconds * 1000 / timed:F1} steps={timed} batch={b} seq={t} threads={CpuParallel.Threads} loss={loss:F4}"));
            return 0;
        }));
        return command;
    }
}
