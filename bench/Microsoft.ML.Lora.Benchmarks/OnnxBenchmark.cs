using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// <c>onnx</c> mode: export time and file size of the engine issue's shape (F32 and int4), and forward
/// tokens/s of ONNX Runtime (tests/onnx/run.mjs, onnxruntime-node) next to our own engine, in one run.
/// ONNX Runtime's time is its run call after session creation (one run per process).
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

            string root = FindRoot();
            string inputs = Path.Combine(dir, "inputs.json");
            File.WriteAllText(inputs, JsonSerializer.Serialize(new Dictionary<string, object>
            {
                ["input_ids"] = new { type = "int64", dims = new[] { b, t }, data = ids },
                ["attention_mask"] = new { type = "int64", dims = new[] { b, t }, data = Enumerable.Repeat(1, b * t) },
            }));
            foreach (var (name, options) in new[] { ("f32", new OnnxExportOptions()), ("int4", new OnnxExportOptions { Int4 = true }) })
            {
                string path = Path.Combine(dir, name + ".onnx");
                var clock = Stopwatch.StartNew();
                LlamaOnnxExporter.Export(model, path, options);
                double export = clock.Elapsed.TotalSeconds;
                double mb = new FileInfo(path).Length / 1048576.0;
                var runMs = RunOrt(root, path, inputs, Path.Combine(dir, name + ".out.json"));
                Console.WriteLine(string.Create(inv, $"onnx {name,-5} export={export:F2}s size={mb:F1}MB  onnxruntime tokens/s={b * t / (runMs / 1000):F0} ({runMs:F1} ms)  ort_time/ours={runMs / 1000 / ours:F2}"));
            }

            return 0;
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }

    private static double RunOrt(string root, string model, string inputs, string outputs)
    {
        var psi = new ProcessStartInfo("node", [Path.Combine(root, "tests", "onnx", "run.mjs"), model, inputs, outputs]) { RedirectStandardError = true, WorkingDirectory = root };
        using var process = Process.Start(psi)!;
        string err = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"onnxruntime run failed (run eng/install-onnxruntime.sh?): {err}");
        }

        using var doc = JsonDocument.Parse(File.ReadAllBytes(outputs));
        return doc.RootElement.GetProperty("_meta").GetProperty("run_ms").GetDouble();
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
