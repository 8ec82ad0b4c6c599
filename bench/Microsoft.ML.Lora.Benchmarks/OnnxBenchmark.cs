using System.Diagnostics;
using System.Globalization;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.OnnxRuntime;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// <c>onnx</c> mode: export time and file size of the engine issue's shape (F32 and int4), and forward
/// tokens/s of ONNX Runtime .NET (CPU, all graph optimizations) next to our own engine, in one run.
/// Both times are the best of 3 runs after a warm-up run.
/// </summary>
internal static class OnnxBenchmark
{
    public static int Run()
    {
        var config = LlamaConfig.Create(vocabSize: 8192, hiddenSize: 512, intermediateSize: 1408, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 4);
        const int b = 4, t = 256;
        using var model = LlamaForCausalLM.CreateRandom(config, seed: 1);
        string dir = Path.Combine(Path.GetTempPath(), "lora-onnx-bench-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            var inv = CultureInfo.InvariantCulture;
            var random = new Random(2);
            var ids = Enumerable.Range(0, b * t).Select(_ => random.Next(config.VocabSize)).ToArray();
            var batch = new CausalLmBatch(b, t, ids, Enumerable.Repeat(-100, b * t).ToArray());
            model.Forward(batch);
            double ours = Enumerable.Range(0, 3).Min(_ =>
            {
                var clock = Stopwatch.StartNew();
                model.Forward(batch);
                return clock.Elapsed.TotalSeconds;
            });
            Console.WriteLine(string.Create(inv, $"ours forward       tokens/s={b * t / ours:F0} ({ours * 1000:F1} ms for {b}x{t})"));

            foreach (var (name, options) in new[] { ("f32", new OnnxExportOptions()), ("int4", new OnnxExportOptions { Int4 = true }) })
            {
                string path = Path.Combine(dir, name + ".onnx");
                var clock = Stopwatch.StartNew();
                LlamaOnnxExporter.Export(model, path, options);
                double export = clock.Elapsed.TotalSeconds;
                double mb = new FileInfo(path).Length / 1048576.0;
                double runMs = RunOrt(path, ids, b, t);
                Console.WriteLine(string.Create(inv, $"onnx {name,-5} export={export:F2}s size={mb:F1}MB  onnxruntime tokens/s={b * t / (runMs / 1000):F0} ({runMs:F1} ms)  ort_time/ours={runMs / 1000 / ours:F2}"));
            }

            Decode(dir, inv);
            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    // Decode speed: 128 greedy tokens after a 16-token prompt, batch 1, on a random model of the same shape over the
    // TinyStories tokenizer (vocab 2048); ONNX Runtime GenAI on the exported folder (F32 and int4, each with the standard
    // attention graph and with GroupQueryAttention) beside our Generator.
    private static void Decode(string dir, CultureInfo inv)
    {
        const int promptLength = 16, newTokens = 128;
        var config = LlamaConfig.Create(vocabSize: 2048, hiddenSize: 512, intermediateSize: 1408, numHiddenLayers: 8, numAttentionHeads: 8, numKeyValueHeads: 4);
        string source = Path.Combine(dir, "decode-model");
        using (var random = LlamaForCausalLM.CreateRandom(config, seed: 3))
        {
            random.Save(source);
        }

        string tokenizerFolder = Path.Combine(FindRoot(), "models", "tinystories-656k");
        foreach (string file in new[] { "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json" })
        {
            File.Copy(Path.Combine(tokenizerFolder, file), Path.Combine(source, file));
        }

        using var model = LlamaForCausalLM.Load(source);
        int[] prompt = Enumerable.Range(0, promptLength).Select(static i => 3 + (i * 37 % 2000)).ToArray();
        var options = new GenerationOptions { MaxNewTokens = newTokens };
        _ = Generator.Generate(model, prompt, options).Count();
        double ours = Enumerable.Range(0, 3).Min(_ =>
        {
            var clock = Stopwatch.StartNew();
            _ = Generator.Generate(model, prompt, options).Count();
            return clock.Elapsed.TotalSeconds;
        });
        Console.WriteLine(string.Create(inv, $"decode ours        tokens/s={newTokens / ours:F0} ({newTokens} tokens after {promptLength}, KV cache, greedy)"));
        var layouts = new[]
        {
            ("f32", new OnnxExportOptions()),
            ("int4", new OnnxExportOptions { Int4 = true }),
            ("f32+gqa", new OnnxExportOptions { GroupQueryAttention = true }),
            ("int4+gqa", new OnnxExportOptions { Int4 = true, GroupQueryAttention = true }),
        };
        foreach (var (name, export) in layouts)
        {
            var clock = Stopwatch.StartNew();
            string folder = GenAiFolderExporter.Export(model, Path.Combine(dir, "genai-" + name), export with { MaxPositions = 256 });
            double exportSeconds = clock.Elapsed.TotalSeconds;
            using var genai = new Microsoft.ML.OnnxRuntimeGenAI.Model(folder);
            double GenAi()
            {
                using var search = new Microsoft.ML.OnnxRuntimeGenAI.GeneratorParams(genai);
                search.SetSearchOption("max_length", promptLength + newTokens);
                search.SetSearchOption("min_length", promptLength + newTokens);
                using var generator = new Microsoft.ML.OnnxRuntimeGenAI.Generator(genai, search);
                generator.AppendTokens(prompt);
                var timer = Stopwatch.StartNew();
                int produced = 0;
                while (!generator.IsDone())
                {
                    generator.GenerateNextToken();
                    produced++;
                }

                return timer.Elapsed.TotalSeconds * newTokens / produced;
            }

            GenAi();
            double best = Enumerable.Range(0, 3).Min(_ => GenAi());
            Console.WriteLine(string.Create(inv, $"decode genai {name,-8} tokens/s={newTokens / best:F0}  genai/ours={ours / best:F2}  export={exportSeconds:F2}s"));
        }
    }

    private static double RunOrt(string model, int[] ids, int b, int t)
    {
        using var options = new SessionOptions { GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL, IntraOpNumThreads = Environment.ProcessorCount };
        using var session = new InferenceSession(model, options);
        using var inputIds = OrtValue.CreateTensorValueFromMemory(ids.Select(static i => (long)i).ToArray(), [b, t]);
        using var mask = OrtValue.CreateTensorValueFromMemory(Enumerable.Repeat(1L, b * t).ToArray(), [b, t]);
        var inputs = new Dictionary<string, OrtValue> { ["input_ids"] = inputIds, ["attention_mask"] = mask };
        using var runOptions = new RunOptions();
        session.Run(runOptions, inputs, ["logits"]).Dispose();
        return Enumerable.Range(0, 3).Min(_ =>
        {
            var clock = Stopwatch.StartNew();
            session.Run(runOptions, inputs, ["logits"]).Dispose();
            return clock.Elapsed.TotalMilliseconds;
        });
    }

    private static string FindRoot()
    {
        for (var d = new DirectoryInfo(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            if (File.Exists(Path.Combine(d.FullName, "Microsoft.ML.Lora.sln")))
            {
                return d.FullName;
            }
        }

        throw new DirectoryNotFoundException("Microsoft.ML.Lora.sln not found above the benchmark binaries");
    }
}
