using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Microsoft.ML.Lora.Tests.Text;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>
/// <c>--backend</c> and <c>--device</c>: the torch backend (libtorch CPU, F32) trains, evaluates, generates,
/// merges and exports as the native engine does, and a device that cannot run is one clear error.
/// </summary>
public sealed partial class BackendCommandTests
{
    // Step 1 starts from B = 0 adapters: both backends compute the frozen model's loss, so they differ by
    // rounding alone (different GEMM and reduction orders). Measured over seeds 1–5 on this fixture:
    // at most 5.9e-8 relative (half an F32 ulp); the bound is 8 ulps.
    private const double StepOneRelative = 1e-6;

    // Later steps follow different but equally rounded trajectories: AdamW turns each rounding difference of
    // a gradient into a parameter difference, and it compounds. Measured over seeds 1–5, 12 steps: at most
    // 1.1e-6 relative (9.6e-6 by step 30); the bound leaves 18× headroom at 12 steps, and a wrong gradient
    // or update moves the loss by 1e-3 or more within a step or two.
    private const double TrainingRelative = 2e-5;

    // Eval is one F32 forward on each backend; the documented contract of the backends' agreement.
    private const double EvalRelative = 1e-4;

    private const int Steps = 12;

    private static readonly string Model = FixturePaths.Case("llama_gqa");
    private static readonly string Data = Path.Combine(FixturePaths.Case("llama_gqa"), "eval.jsonl");

    [Fact]
    public void TorchTrainingFollowsTheNativeEngineStepByStep()
    {
        using var tmp = new TempDir();
        var losses = new Dictionary<string, double[]>();
        foreach (string backend in new[] { "native", "torch" })
        {
            string outDir = Path.Combine(tmp.Path, backend);
            var (exit, output, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", outDir, "--backend", backend, "--device", "cpu", "--rank", "4", "--lr", "1e-2", "--max-steps", Steps.ToString(CultureInfo.InvariantCulture), "--batch-size", "2", "--seed", "3");
            Assert.True(exit == 0, error);
            Assert.Equal(backend == "torch", output.Contains("on the torch (cpu) backend", StringComparison.Ordinal));
            losses[backend] = StepLosses(Path.Combine(outDir, "metrics.jsonl"));
            Assert.Equal(Steps, losses[backend].Length);
        }

        var (native, torch) = (losses["native"], losses["torch"]);
        Assert.Equal(native[0], torch[0], native[0] * StepOneRelative);
        for (int i = 0; i < Steps; i++)
        {
            Assert.True(Math.Abs(native[i] - torch[i]) <= native[i] * TrainingRelative, $"step {i + 1}: native {native[i]:R}, torch {torch[i]:R}");
        }

        // The adapter saved from the device is the trained one: it evaluates as the native run's does, on
        // either backend, and well below the base (training happened; the comparison above is not trivial).
        string torchAdapter = Path.Combine(tmp.Path, "torch");
        double nativeRun = Loss(CliRunner.Run("eval", "--model", Model, "--data", Data, "--adapter", Path.Combine(tmp.Path, "native")));
        double torchRun = Loss(CliRunner.Run("eval", "--model", Model, "--data", Data, "--adapter", torchAdapter));
        double torchRunOnTorch = Loss(CliRunner.Run("eval", "--model", Model, "--data", Data, "--adapter", torchAdapter, "--backend", "torch"));
        Assert.Equal(nativeRun, torchRun, nativeRun * TrainingRelative);
        Assert.Equal(torchRun, torchRunOnTorch, torchRun * EvalRelative);
        Assert.True(torchRun < Loss(CliRunner.Run("eval", "--model", Model, "--data", Data)) - 1, "training must have changed the model");

        // Merge and ONNX export run on the device too; the merged folder evaluates as the adapter does.
        string merged = Path.Combine(tmp.Path, "merged");
        var (code, _, err) = CliRunner.Run("merge", "--model", Model, "--adapter", torchAdapter, "--out", merged, "--backend", "torch");
        Assert.True(code == 0, err);
        Assert.Equal(torchRun, Loss(CliRunner.Run("eval", "--model", merged, "--data", Data)), torchRun * EvalRelative);
        string onnx = Path.Combine(tmp.Path, "m.onnx");
        (code, _, err) = CliRunner.Run("export-onnx", "--model", Model, "--adapter", torchAdapter, "--out", onnx, "--backend", "torch");
        Assert.True(code == 0, err);
        Assert.True(new FileInfo(onnx).Length > 10_000);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void TorchEvalEqualsNativeEval(bool nf4)
    {
        string[] flags = nf4 ? ["--quantize", "nf4", "--double-quant"] : [];
        double native = Loss(CliRunner.Run(["eval", "--model", Model, "--data", Data, .. flags]));
        double torch = Loss(CliRunner.Run(["eval", "--model", Model, "--data", Data, "--backend", "torch", .. flags]));
        Assert.Equal(native, torch, native * EvalRelative);
    }

    // Greedy choices are robust here: over these prompts' 48 steps the native top-1 logit leads the runner-up
    // by at least 7.8e-4, and the two backends' logits differ by at most 1.8e-7 (measured), 4000× less.
    [Fact]
    public void TorchGreedyGenerationEqualsNative()
    {
        using var tmp = new TempDir();
        string model = TinyTextModel.Create(Path.Combine(tmp.Path, "model"));
        foreach (string prompt in new[] { "capital of France? ", "2+2=", "dog says " })
        {
            string native = Generated(CliRunner.Run("generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "16"));
            Assert.Equal(native, Generated(CliRunner.Run("generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "16", "--backend", "torch")));
            Assert.Equal(native, Generated(CliRunner.Run("generate", "--model", model, "--prompt", prompt, "--max-new-tokens", "16", "--backend", "torch", "--no-cache")));
        }
    }

    [Theory]
    [InlineData("cuda")]
    [InlineData("cuda:0")]
    public void CudaWithoutItsNativesIsOneClearErrorAndWritesNothing(string device)
    {
        // The tests reference TorchSharp-cpu, so CUDA never runs here, GPU or not.
        using var tmp = new TempDir();
        string outDir = Path.Combine(tmp.Path, "out");
        var (exit, output, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", outDir, "--device", device, "--max-steps", "2");
        Assert.Equal(1, exit);
        Assert.Equal(string.Empty, output);
        string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --device " + device, line, StringComparison.Ordinal);
        Assert.Contains("TorchSharp-cuda", line, StringComparison.Ordinal);
        Assert.False(Directory.Exists(outDir), "--out must not be created when the device cannot run");
    }

    [Theory]
    [InlineData("train", "--out")]
    [InlineData("eval", null)]
    [InlineData("generate", null)]
    [InlineData("merge", "--out")]
    [InlineData("export-onnx", "--out")]
    [InlineData("bench", null)]
    [InlineData("serve", "--data-dir")]
    public void EveryCommandRefusesTheNativeBackendOnCuda(string command, string? outputOption)
    {
        using var tmp = new TempDir();
        string outPath = Path.Combine(tmp.Path, "out");
        string[] args = command switch
        {
            "train" => ["--model", Model, "--data", Data, "--out", outPath],
            "eval" => ["--model", Model, "--data", Data],
            "generate" => ["--model", Model, "--prompt", "hi"],
            "merge" => ["--model", Model, "--adapter", tmp.Path, "--out", outPath],
            "export-onnx" => ["--model", Model, "--out", outPath],
            "bench" => ["--layers", "1", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--intermediate", "96", "--vocab", "128", "--seq", "8", "--batch", "1"],
            _ => ["--data-dir", outPath],
        };
        var (exit, _, error) = CliRunner.Run([command, .. args, "--backend", "native", "--device", "cuda:0"]);
        Assert.Equal(1, exit);
        string line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: --backend native", line, StringComparison.Ordinal);
        Assert.Contains("--device is 'cuda:0'", line, StringComparison.Ordinal);
        if (outputOption is not null)
        {
            Assert.False(Path.Exists(outPath), $"{outputOption} must not be written");
        }
    }

    [Theory]
    [InlineData("--backend 'tpu' is unknown", new[] { "--backend", "tpu" })]
    [InlineData("--device 'gpu' is unknown", new[] { "--device", "gpu" })]
    [InlineData("--device 'cuda:x' is unknown", new[] { "--backend", "torch", "--device", "cuda:x" })]
    [InlineData("--bf16-compute", new[] { "--bf16-compute" })]
    public void UnknownBackendsAndDevicesAreErrorsNamingTheOption(string mustContain, string[] flags)
    {
        var (exit, _, error) = CliRunner.Run(["eval", "--model", Model, "--data", Data, .. flags]);
        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.Contains(mustContain, error, StringComparison.Ordinal);
    }

    [Fact]
    public void ServeChecksTheDeviceBeforeCreatingAnything()
    {
        using var tmp = new TempDir();
        string data = Path.Combine(tmp.Path, "data");
        var (exit, _, error) = CliRunner.Run("serve", "--data-dir", data, "--device", "cuda");
        Assert.Equal(1, exit);
        Assert.Contains("TorchSharp-cuda", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void BenchRunsOnTheTorchBackendAndSaysMemoryIsNotMeasured(bool bf16Compute)
    {
        string[] shape = ["--layers", "2", "--hidden", "64", "--heads", "4", "--kv-heads", "2", "--intermediate", "96", "--vocab", "128", "--seq", "16", "--batch", "2", "--steps", "2", "--rank", "4", "--quantize", "nf4"];
        var (exit, native, error) = CliRunner.Run(["bench", .. shape]);
        Assert.True(exit == 0, error);
        (exit, var torch, error) = CliRunner.Run(["bench", .. shape, "--backend", "torch", .. (bf16Compute ? new[] { "--bf16-compute" } : [])]);
        Assert.True(exit == 0, error);
        var nativeModes = ModeLine().Matches(native).ToDictionary(m => m.Groups[1].Value);
        var torchModes = ModeLine().Matches(torch).ToDictionary(m => m.Groups[1].Value);
        Assert.Equal(["frozen", "lora r=4", "qlora r=4"], torchModes.Keys.Order());
        Assert.All(torchModes.Values, m => Assert.Equal("n/a", m.Groups[3].Value));
        Assert.Contains("memory: peak_mb not measured on the torch backend", torch, StringComparison.Ordinal);
        Assert.Contains(bf16Compute ? "backend=torch:cpu bf16_compute" : "backend=torch:cpu\n", torch.ReplaceLineEndings("\n"), StringComparison.Ordinal);

        // B = 0: the LoRA step's loss is the frozen one on either backend; in F32 it is the native engine's too.
        Assert.Equal(torchModes["frozen"].Groups[4].Value, torchModes["lora r=4"].Groups[4].Value);
        double nativeLoss = double.Parse(nativeModes["frozen"].Groups[4].Value, CultureInfo.InvariantCulture);
        double torchLoss = double.Parse(torchModes["frozen"].Groups[4].Value, CultureInfo.InvariantCulture);
        // BF16 products round each input to 8 bits of mantissa (relative 2^-9 per element): the loss of ln 128 still agrees to 1e-2.
        Assert.Equal(nativeLoss, torchLoss, nativeLoss * (bf16Compute ? 1e-2 : EvalRelative));
    }

    private static double[] StepLosses(string metrics)
    {
        var losses = new List<double>();
        foreach (string line in File.ReadLines(metrics))
        {
            using var row = JsonDocument.Parse(line);
            if (row.RootElement.GetProperty("type").GetString() == "step")
            {
                losses.Add(row.RootElement.GetProperty("loss").GetDouble());
            }
        }

        return [.. losses];
    }

    private static double Loss((int Exit, string Out, string Err) run)
    {
        Assert.True(run.Exit == 0, run.Err);
        var m = EvalLine().Match(run.Out);
        Assert.True(m.Success, run.Out);
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    private static string Generated((int Exit, string Out, string Err) run)
    {
        Assert.True(run.Exit == 0, run.Err);
        return run.Out;
    }

    [GeneratedRegex(@"^loss=([0-9.]+) tokens=")]
    private static partial Regex EvalLine();

    [GeneratedRegex(@"^(frozen|lora r=\d+|qlora r=\d+)\s+tokens/s=[0-9.]+ .*x_frozen=([0-9.]+) .*peak_mb=(\S+) loss=([0-9.]+)\s*$", RegexOptions.Multiline)]
    private static partial Regex ModeLine();
}
