using System.Globalization;
using Microsoft.ML.Lora.GpuCheck;
using Microsoft.ML.Lora.TorchSharp;

// lora-gpu-check probe  [--device D]            tiny model on native vs torch D; exit 0 when they agree
// lora-gpu-check golden [--device D] [--filter S] the torch backend's golden tests on D
// lora-gpu-check make-model --dir F [shape options]   a random BF16 Llama folder that both benchmark sides load
// lora-gpu-check bench  [--device D] --mode lora|lora-ckpt|qlora [--model F | shape options]   one result line
// D is cpu, cuda or cuda:N (default cpu). See docs/gpu.md.
if (args.Length == 0 || args[0] is "-h" or "--help")
{
    Console.WriteLine("usage: lora-gpu-check probe|golden|make-model|bench [--device cpu|cuda|cuda:N] [golden: --filter TEXT] [make-model: --dir F, shape] [bench: --mode lora|lora-ckpt|qlora --model F | shape: --layers N --hidden N --heads N --kv-heads N --intermediate N --vocab N --seq N --batch N --steps N --warmup N --rank N --no-bf16-compute]");
    return args.Length == 0 ? 2 : 0;
}

try
{
    var options = Options.Parse(args.AsSpan(1));
    string device = options.Text("--device", "cpu");
    switch (args[0])
    {
        case "probe":
            options.EnsureAllUsed();
            return Probe.Run(Console.Out, device) == 0 ? 0 : 1;
        case "golden":
            Environment.SetEnvironmentVariable(Microsoft.ML.Lora.Tests.TestBackend.DeviceVariable, device);
            string? filter = options.TextOrNull("--filter");
            options.EnsureAllUsed();
            return GoldenRunner.Run(Console.Out, filter) == 0 ? 0 : 1;
        case "make-model":
            string dir = options.TextOrNull("--dir") ?? throw new ArgumentException("make-model needs --dir FOLDER");
            var shape = ReadShape(options, new BenchArgs());
            options.EnsureAllUsed();
            RandomModel.Write(dir, shape.Config());
            Console.WriteLine($"model written: {Path.GetFullPath(dir)} ({shape.Layers} layers, hidden {shape.Hidden}, vocab {shape.Vocab})");
            return 0;
        case "bench":
            var bench = ReadShape(options, new BenchArgs()) with
            {
                Device = device,
                Model = options.TextOrNull("--model"),
                Mode = options.Text("--mode", "lora"),
                Seq = options.Int("--seq", new BenchArgs().Seq),
                Batch = options.Int("--batch", new BenchArgs().Batch),
                Steps = options.Int("--steps", new BenchArgs().Steps),
                Warmup = options.Int("--warmup", new BenchArgs().Warmup),
                Rank = options.Int("--rank", new BenchArgs().Rank),
                Bf16Compute = !options.Flag("--no-bf16-compute"),
            };
            options.EnsureAllUsed();
            if (!Bench.Modes.Contains(bench.Mode))
            {
                throw new ArgumentException($"--mode {bench.Mode}: expected one of {string.Join(", ", Bench.Modes)}");
            }

            if (bench.Steps < 1 || bench.Warmup < 0 || bench.Seq < 2 || bench.Batch < 1 || bench.Rank < 1)
            {
                throw new ArgumentException("--steps, --batch and --rank must be at least 1, --seq at least 2, --warmup at least 0");
            }

            return Bench.Run(Console.Out, bench);
        default:
            throw new ArgumentException($"unknown command '{args[0]}': expected probe, golden, make-model or bench");
    }
}
catch (TorchBackendUnavailableException e)
{
    Console.Error.WriteLine($"lora-gpu-check: torch backend unavailable: {e.Message}");
    return 3;
}
catch (ArgumentException e)
{
    Console.Error.WriteLine($"lora-gpu-check: {e.Message}");
    return 2;
}

// The model shape (ignored by bench when --model names a folder).
static BenchArgs ReadShape(Options o, BenchArgs d) => d with
{
    Layers = o.Int("--layers", d.Layers),
    Hidden = o.Int("--hidden", d.Hidden),
    Heads = o.Int("--heads", d.Heads),
    KvHeads = o.Int("--kv-heads", d.KvHeads),
    Intermediate = o.Int("--intermediate", d.Intermediate),
    Vocab = o.Int("--vocab", d.Vocab),
};

/// <summary>--name value pairs and --flag switches; every one given must be used.</summary>
internal sealed class Options
{
    private readonly Dictionary<string, string?> values = new(StringComparer.Ordinal);
    private readonly HashSet<string> used = new(StringComparer.Ordinal);

    public static Options Parse(ReadOnlySpan<string> args)
    {
        var o = new Options();
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (!name.StartsWith("--", StringComparison.Ordinal))
            {
                throw new ArgumentException($"unexpected argument '{name}': options are --name value");
            }

            bool hasValue = i + 1 < args.Length && !args[i + 1].StartsWith("--", StringComparison.Ordinal);
            o.values[name] = hasValue ? args[++i] : null;
        }

        return o;
    }

    public string Text(string name, string fallback) => TextOrNull(name) ?? fallback;

    public string? TextOrNull(string name)
    {
        if (!values.TryGetValue(name, out string? v))
        {
            return null;
        }

        used.Add(name);
        return v ?? throw new ArgumentException($"{name} needs a value");
    }

    public int Int(string name, int fallback)
    {
        string? v = TextOrNull(name);
        if (v is null)
        {
            return fallback;
        }

        return int.TryParse(v, NumberStyles.Integer, CultureInfo.InvariantCulture, out int n)
            ? n
            : throw new ArgumentException($"{name} takes an integer; got '{v}'");
    }

    public bool Flag(string name)
    {
        if (!values.TryGetValue(name, out string? v))
        {
            return false;
        }

        used.Add(name);
        return v is null ? true : throw new ArgumentException($"{name} is a switch and takes no value; got '{v}'");
    }

    public void EnsureAllUsed()
    {
        var unknown = values.Keys.Where(k => !used.Contains(k)).ToList();
        if (unknown.Count > 0)
        {
            throw new ArgumentException($"unknown option(s) for this command: {string.Join(", ", unknown)}");
        }
    }
}
