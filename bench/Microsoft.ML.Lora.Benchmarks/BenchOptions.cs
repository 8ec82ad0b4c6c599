using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>Command-line options of the benchmark modes.</summary>
internal sealed record BenchOptions(int Threads, int Samples, GemmIsa Isa, GemmBlocking? Blocking, string? Only, string? Shapes, bool NoOpenBlas)
{
    public static BenchOptions Parse(ReadOnlySpan<string> args)
    {
        int threads = Environment.ProcessorCount, samples = 7;
        int? mc = null, kc = null, nc = null;
        GemmIsa isa = GemmIsa.Auto;
        string? only = null, shapes = null;
        bool noOpenBlas = false;
        for (int i = 0; i < args.Length; i++)
        {
            string name = args[i];
            if (name == "--no-openblas")
            {
                noOpenBlas = true;
                continue;
            }

            string value = i + 1 < args.Length ? args[++i] : throw new ArgumentException($"option '{name}' needs a value");
            switch (name)
            {
                case "--threads": threads = PositiveInt(name, value); break;
                case "--samples": samples = PositiveInt(name, value); break;
                case "--isa": isa = Enum.TryParse(value, ignoreCase: true, out GemmIsa v) ? v : throw new ArgumentException($"--isa: unknown path '{value}' (Scalar, Avx2, Avx512)"); break;
                case "--mc": mc = PositiveInt(name, value); break;
                case "--kc": kc = PositiveInt(name, value); break;
                case "--nc": nc = PositiveInt(name, value); break;
                case "--only": only = value; break;
                case "--shapes": shapes = value; break;
                default: throw new ArgumentException($"unknown option '{name}'");
            }
        }

        GemmBlocking? blocking = null;
        if (mc is not null || kc is not null || nc is not null)
        {
            GemmBlocking d = GemmConfig.For(isa == GemmIsa.Auto ? GemmIsaSelector.Best : isa).Blocking;
            blocking = new GemmBlocking(mc ?? d.Mc, kc ?? d.Kc, nc ?? d.Nc);
        }

        return new BenchOptions(threads, samples, isa, blocking, only, shapes, noOpenBlas);
    }

    private static int PositiveInt(string name, string value) =>
        int.TryParse(value, out int v) && v > 0 ? v : throw new ArgumentException($"option '{name}' needs a positive integer, got '{value}'");
}
