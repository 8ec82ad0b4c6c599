namespace Microsoft.ML.Lora.Benchmarks;

/// <summary>Benchmark entry point: <c>dotnet run -c Release --project bench/Microsoft.ML.Lora.Benchmarks -- MODE [options]</c>.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        if (args.Length == 0 || args[0] is "-h" or "--help")
        {
            Console.WriteLine("usage: Microsoft.ML.Lora.Benchmarks gemm [--threads N] [--samples N] [--isa Scalar|Avx2|Avx512] [--mc N --kc N --nc N] [--only SUBSTRING[,SUBSTRING…]] [--shapes NT:MxNxK[:bf16|:nf4],…] [--no-openblas]");
            Console.WriteLine("       Microsoft.ML.Lora.Benchmarks pipeline [--threads N] [--reps N]   (other modes: gemm-kernel, tokenizer, onnx)");
            return args.Length == 0 ? 2 : 0;
        }

        try
        {
            return args[0] switch
            {
                "gemm" => GemmBenchmark.Run(BenchOptions.Parse(args.AsSpan(1))),
                "gemm-kernel" => KernelPeak.Run(BenchOptions.Parse(args.AsSpan(1))),
                "tokenizer" => TokenizerBenchmark.Run(args.AsSpan(1)),
                "onnx" => OnnxBenchmark.Run(),
                "pipeline" => PipelineBenchmark.Run(args.AsSpan(1)),
                _ => throw new ArgumentException($"unknown mode '{args[0]}'; known modes: gemm, gemm-kernel, tokenizer, onnx, pipeline"),
            };
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine(e.Message);
            return 2;
        }
    }
}
