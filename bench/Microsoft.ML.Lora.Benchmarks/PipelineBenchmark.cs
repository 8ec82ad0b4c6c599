using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Lora.MLNet;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// <c>pipeline</c> mode: what batching buys at the ML.NET pipeline API, on a small random Llama
/// (<see cref="PipelineBenchModel"/>) with a LoRA adapter from one training step (the same adapter for every
/// setting: one seed). (1) rows/s of the classifier's scoring (what its Transform runs per batch) with
/// PredictionBatchSize 1, 8 and 32; (2) new tokens/s of the causal LM's generation over
/// prompts of equal token length with GenerationBatchSize 1 and 8 (greedy, a fixed count of new tokens, no
/// stop token). The settings run interleaved, one call each per repetition, after one warm-up call each. The
/// result is the ratio to batch 1: the median over repetitions of each repetition's own ratio (paired, so a
/// change of machine load between repetitions falls on both sides), with its quartiles; the median times are
/// printed next to it.
/// </summary>
internal static class PipelineBenchmark
{
    private const int Texts = 64, Prompts = 16, PromptChars = 24, NewTokens = 64;
    private static readonly int[] PredictionBatchSizes = [1, 8, 32];
    private static readonly int[] GenerationBatchSizes = [1, 8];

    public static int Run(ReadOnlySpan<string> args)
    {
        int reps = 15, threads = Environment.ProcessorCount;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException($"option '{name}' needs a value");
            int parsed = int.TryParse(value, out int v) && v > 0 ? v : throw new ArgumentException($"option '{name}' needs a positive integer, got '{value}'");
            switch (name)
            {
                case "--reps": reps = parsed; break;
                case "--threads": threads = parsed; break;
                default: throw new ArgumentException($"unknown option '{name}'; pipeline mode takes --reps N and --threads N");
            }
        }

        Backend.Native.Threads = threads;
        string root = Path.Combine(Path.GetTempPath(), "lora-pipeline-bench-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(root);
        try
        {
            string modelPath = PipelineBenchModel.Create(Path.Combine(root, "model"));
            var config = PipelineBenchModel.Config;
            var inv = CultureInfo.InvariantCulture;
            Console.WriteLine(string.Create(inv, $"model: random Llama layers={config.NumHiddenLayers} hidden={config.HiddenSize} heads={config.NumAttentionHeads}/{config.NumKeyValueHeads} intermediate={config.IntermediateSize} vocab={config.VocabSize}, LoRA r=8 (one training step), byte-level tokenizer; threads={threads} reps={reps}"));
            Classification(modelPath, reps, inv);
            Generation(modelPath, reps, inv);
            return 0;
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    private static void Classification(string modelPath, int reps, CultureInfo inv)
    {
        var random = new Random(3);
        var texts = Enumerable.Range(0, Texts).Select(_ => Sentence(random, random.Next(16, 65))).ToArray();
        var rows = texts.Select(static t => new[] { t }).ToArray();
        var labelled = texts[..8].Select((t, i) => new ClassifiedText { Sentence1 = t, Label = i % 2 == 0 ? "a" : "b" }).ToArray();
        var transformers = PredictionBatchSizes.Select(b =>
        {
            var ml = new MLContext(seed: 1);
            var options = new LoraTextClassificationTrainer.Options { ModelPath = modelPath, MaxSteps = 1, BatchSize = 4, PredictionBatchSize = b };
            var keyed = ml.Transforms.Conversion.MapValueToKey("Label").Fit(ml.Data.LoadFromEnumerable(labelled)).Transform(ml.Data.LoadFromEnumerable(labelled));
            return ml.MulticlassClassification.Trainers.LoraTextClassification(options).Fit(keyed);
        }).ToArray();
        try
        {
            var scores = transformers.Select(t => t.PredictScores(rows)).ToArray();
            double maxDiff = scores.Skip(1).SelectMany(s => s.Zip(scores[0], (a, b) => a.Zip(b, (x, y) => Math.Abs(x - y)).Max())).Max();
            var times = Interleaved(transformers.Length, reps, i => transformers[i].PredictScores(rows));
            int tokens = texts.Sum(t => transformers[0].Encode(t).Length);
            Console.WriteLine(string.Create(inv, $"== classification: PredictScores over {Texts} texts ({tokens} tokens, {texts.Min(t => t.Length)}-{texts.Max(t => t.Length)} chars), 2 classes"));
            for (int i = 0; i < transformers.Length; i++)
            {
                double median = Quantile(times[i], 0.5);
                Console.WriteLine(string.Create(inv, $"PredictionBatchSize {PredictionBatchSizes[i],2}: rows/s={Texts / median,8:F1}  ({median * 1000,7:F1} ms)  {(i == 0 ? "baseline" : Ratio(times[0], times[i]) + " vs batch 1")}"));
            }

            Console.WriteLine(string.Create(inv, $"max |score difference| vs batch 1: {maxDiff:G3}"));
        }
        finally
        {
            foreach (var t in transformers)
            {
                t.Dispose();
            }
        }
    }

    private static void Generation(string modelPath, int reps, CultureInfo inv)
    {
        var random = new Random(4);
        // One byte per token and no BOS: prompts of equal character count have equal token counts.
        var prompts = Enumerable.Range(0, Prompts).Select(_ => Sentence(random, PromptChars)).ToArray();
        var pairs = prompts[..4].Select((p, i) => new PromptPair { Prompt = p, Completion = i % 2 == 0 ? " yes" : " no" }).ToArray();
        var transformers = GenerationBatchSizes.Select(b =>
        {
            var ml = new MLContext(seed: 1);
            var options = new LoraCausalLmTrainer.Options { ModelPath = modelPath, MaxSteps = 1, BatchSize = 4, MaxNewTokens = NewTokens, GenerationBatchSize = b };
            var transformer = ml.Transforms.Text.LoraCausalLm(options).Fit(ml.Data.LoadFromEnumerable(pairs));

            // -1 is no token id: generation never stops early, so every setting produces Prompts × NewTokens tokens.
            transformer.Generation = transformer.Generation with { StopTokenIds = [-1] };
            return transformer;
        }).ToArray();
        try
        {
            var outputs = transformers.Select(t => t.Generate(prompts)).ToArray();
            bool same = outputs.Skip(1).All(o => o.SequenceEqual(outputs[0], StringComparer.Ordinal));
            var times = Interleaved(transformers.Length, reps, i => transformers[i].Generate(prompts));
            Console.WriteLine(string.Create(inv, $"== generation: Generate over {Prompts} prompts of {PromptChars} tokens, {NewTokens} new tokens each, greedy, no stop token, KV cache"));
            for (int i = 0; i < transformers.Length; i++)
            {
                double median = Quantile(times[i], 0.5);
                Console.WriteLine(string.Create(inv, $"GenerationBatchSize {GenerationBatchSizes[i],2}: tokens/s={Prompts * NewTokens / median,8:F1}  ({median * 1000,7:F1} ms)  {(i == 0 ? "baseline" : Ratio(times[0], times[i]) + " vs batch 1")}"));
            }

            Console.WriteLine($"generated texts identical to batch 1: {(same ? "yes" : "NO")}");
        }
        finally
        {
            foreach (var t in transformers)
            {
                t.Dispose();
            }
        }
    }

    // Seconds of each call, per setting; each repetition times every setting once, in turn.
    private static double[][] Interleaved(int settings, int reps, Action<int> run)
    {
        var times = Enumerable.Range(0, settings).Select(_ => new double[reps]).ToArray();
        for (int r = 0; r < reps; r++)
        {
            for (int s = 0; s < settings; s++)
            {
                var clock = Stopwatch.StartNew();
                run(s);
                times[s][r] = clock.Elapsed.TotalSeconds;
            }
        }

        return times;
    }

    // Speed-up of a setting over the baseline: median of the per-repetition ratios, with their quartiles.
    private static string Ratio(double[] baseline, double[] setting)
    {
        var ratios = baseline.Zip(setting, static (b, s) => b / s).ToArray();
        return string.Create(CultureInfo.InvariantCulture, $"x{Quantile(ratios, 0.5):F2} (quartiles {Quantile(ratios, 0.25):F2}-{Quantile(ratios, 0.75):F2})");
    }

    // Linear interpolation between the order statistics.
    private static double Quantile(double[] values, double q)
    {
        var sorted = values.Order().ToArray();
        double at = q * (sorted.Length - 1);
        int lo = (int)Math.Floor(at), hi = Math.Min(lo + 1, sorted.Length - 1);
        return sorted[lo] + (at - lo) * (sorted[hi] - sorted[lo]);
    }

    private sealed class ClassifiedText
    {
        public string Sentence1 { get; set; } = "";

        public string Label { get; set; } = "";
    }

    private sealed class PromptPair
    {
        public string Prompt { get; set; } = "";

        public string Completion { get; set; } = "";
    }

    private static string Sentence(Random random, int chars)
    {
        string[] words = ["the", "model", "reads", "a", "short", "review", "of", "good", "bad", "service", "and", "food", "was", "very", "slow", "fast", "place"];
        var text = new System.Text.StringBuilder();
        while (text.Length < chars)
        {
            text.Append(text.Length == 0 ? "" : " ").Append(words[random.Next(words.Length)]);
        }

        return text.ToString(0, chars);
    }
}
