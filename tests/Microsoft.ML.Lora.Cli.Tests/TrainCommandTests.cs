using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora train</c>, <c>merge</c>, <c>eval --adapter</c> end to end on the tiny fixture, and their errors.</summary>
public sealed partial class TrainCommandTests
{
    private static readonly string Model = FixturePaths.Case("llama_gqa");
    private static readonly string Data = Path.Combine(FixturePaths.Case("llama_gqa"), "eval.jsonl");

    [Theory]
    [InlineData("llama_gqa", "qwen2_bias")]
    [InlineData("qwen3", "llama_gqa")]
    [InlineData("phi3", "qwen3")]
    [InlineData("gemma3", "phi3")]
    public void TrainWritesAPeftAdapterThatEvalAndMergeAgreeOn(string modelCase, string otherCase)
    {
        string model = FixturePaths.Case(modelCase), data = Path.Combine(model, "eval.jsonl");
        using var tmp = new TempDir();
        string adapter = Path.Combine(tmp.Path, "adapter");
        var (exit, output, error) = CliRunner.Run("train", "--model", model, "--data", data, "--val-data", data, "--out", adapter, "--rank", "4", "--lr", "1e-2", "--max-steps", "12", "--batch-size", "2", "--seed", "3");
        Assert.True(exit == 0, error);
        Assert.Equal(["adapter_config.json", "adapter_model.safetensors", "metrics.jsonl"], Directory.GetFiles(adapter).Select(Path.GetFileName).Order());
        double valLoss = double.Parse(ValLoss().Match(output).Groups[1].Value, CultureInfo.InvariantCulture);
        Assert.Equal(12, File.ReadLines(Path.Combine(adapter, "metrics.jsonl")).Count(l => l.Contains("\"type\":\"step\"", StringComparison.Ordinal)));
        using (var config = JsonDocument.Parse(File.ReadAllText(Path.Combine(adapter, "adapter_config.json"))))
        {
            Assert.Equal("LORA", config.RootElement.GetProperty("peft_type").GetString());
            Assert.Equal(4, config.RootElement.GetProperty("r").GetInt32());
        }

        // The saved adapter reproduces the trainer's last validation loss, and so does the merged model.
        var withAdapter = Loss(CliRunner.Run("eval", "--model", model, "--data", data, "--adapter", adapter));
        Assert.Equal(valLoss, withAdapter, 1e-4);
        var baseLoss = Loss(CliRunner.Run("eval", "--model", model, "--data", data));
        Assert.True(withAdapter < baseLoss - 1, $"adapter {withAdapter} vs base {baseLoss}: training must have changed the model");

        string merged = Path.Combine(tmp.Path, "merged");
        (exit, _, error) = CliRunner.Run("merge", "--model", model, "--adapter", adapter, "--out", merged);
        Assert.True(exit == 0, error);
        Assert.True(File.Exists(Path.Combine(merged, "config.json")) && File.Exists(Path.Combine(merged, "model.safetensors")));
        Assert.Equal(withAdapter, Loss(CliRunner.Run("eval", "--model", merged, "--data", data)), 1e-5);

        // An adapter trained on this base does not fit another one: the error names the key.
        (exit, _, error) = CliRunner.Run("eval", "--model", FixturePaths.Case(otherCase), "--data", Path.Combine(FixturePaths.Case(otherCase), "eval.jsonl"), "--adapter", adapter);
        Assert.Equal(1, exit);
        Assert.Contains("lora_", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("qwen3")]
    [InlineData("phi3")]
    [InlineData("gemma2")]
    public void QloraAndFullFineTuningRunAndSave(string modelCase)
    {
        string model = FixturePaths.Case(modelCase), data = Path.Combine(model, "eval.jsonl");
        using var tmp = new TempDir();
        string qlora = Path.Combine(tmp.Path, "qlora");
        var (exit, output, error) = CliRunner.Run("train", "--model", model, "--data", data, "--out", qlora, "--quantize", "nf4", "--double-quant", "--rank", "2", "--max-steps", "3", "--batch-size", "2");
        Assert.True(exit == 0, error);
        Assert.Contains("over NF4 weights", output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(qlora, "adapter_model.safetensors")));
        var nf4Eval = Loss(CliRunner.Run("eval", "--model", model, "--data", data, "--quantize", "nf4", "--double-quant", "--adapter", qlora));
        Assert.True(double.IsFinite(nf4Eval));

        string full = Path.Combine(tmp.Path, "full");
        (exit, _, error) = CliRunner.Run("train", "--model", model, "--data", data, "--out", full, "--full", "--lr", "1e-3", "--max-steps", "3", "--batch-size", "2");
        Assert.True(exit == 0, error);
        var fullLoss = Loss(CliRunner.Run("eval", "--model", Path.Combine(full, "model"), "--data", data));
        Assert.NotEqual(Loss(CliRunner.Run("eval", "--model", model, "--data", data)), fullLoss);
    }

    [Fact]
    public void ResumeFromACheckpointWritesTheSameAdapter()
    {
        using var tmp = new TempDir();
        string a = Path.Combine(tmp.Path, "a"), b = Path.Combine(tmp.Path, "b");
        string[] common = ["train", "--model", Model, "--data", Data, "--rank", "2", "--dropout", "0.1", "--max-steps", "6", "--batch-size", "2", "--checkpoint-every", "3"];
        var (exit, _, error) = CliRunner.Run([.. common, "--out", a]);
        Assert.True(exit == 0, error);
        var before = Directory.GetFiles(a, "*", SearchOption.AllDirectories).ToDictionary(f => f, File.ReadAllBytes);
        (exit, var output, error) = CliRunner.Run([.. common, "--out", b, "--resume", Path.Combine(a, "checkpoints", "checkpoint-3")]);
        Assert.True(exit == 0, error);
        Assert.Contains($"into {b}", output, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(b, "adapter_model.safetensors")));

        // The resumed run wrote its metrics and checkpoints under --out; the original run folder is untouched.
        Assert.True(File.Exists(Path.Combine(b, "metrics.jsonl")));
        Assert.True(Directory.Exists(Path.Combine(b, "checkpoints", "checkpoint-6")));
        Assert.All(before, f => Assert.Equal(f.Value, File.ReadAllBytes(f.Key)));
        Assert.Equal(before.Keys.Order(), Directory.GetFiles(a, "*", SearchOption.AllDirectories).Order());

        // Only the flags given are compared: the checkpoint's other options carry over (a bare resume works);
        // one that decides the steps is refused by name; a longer run is applied and stated; the last
        // checkpoint resumes cleanly.
        string last = Path.Combine(a, "checkpoints", "checkpoint-6");
        (exit, output, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", Path.Combine(tmp.Path, "c"), "--resume", last);
        Assert.True(exit == 0, error);
        Assert.Contains("no steps left", output, StringComparison.Ordinal);
        Assert.Equal(File.ReadAllBytes(Path.Combine(a, "adapter_model.safetensors")), File.ReadAllBytes(Path.Combine(tmp.Path, "c", "adapter_model.safetensors")));
        (exit, _, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", Path.Combine(tmp.Path, "g"), "--resume", last, "--rank", "4");
        Assert.Equal(1, exit);
        Assert.Contains("--rank 4 (the run's: 2)", error, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--rank", "2", "--out", Path.Combine(tmp.Path, "d"), "--resume", last, "--lr", "0.5");
        Assert.Equal(1, exit);
        Assert.Contains("LearningRate (checkpoint", error, StringComparison.Ordinal);
        (exit, output, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", Path.Combine(tmp.Path, "e"), "--resume", last, "--max-steps", "8");
        Assert.True(exit == 0, error);
        Assert.Contains("changed: max steps 6 → 8", output, StringComparison.Ordinal);
        Assert.Contains("steps=8", output, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--rank", "2", "--out", Path.Combine(tmp.Path, "f"), "--resume", last, "--quantize", "nf4");
        Assert.Equal(1, exit);
        Assert.Contains("nf4", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("rank", new[] { "--rank", "0" })]
    [InlineData("alpha", new[] { "--alpha", "0" })]
    [InlineData("'query_key_value'", new[] { "--targets", "q_proj,query_key_value" })]
    [InlineData("diverged", new[] { "--lr", "1e30", "--max-steps", "6" })]
    [InlineData("--schedule", new[] { "--schedule", "triangle" })]
    public void BadTrainingInputIsAClearErrorAndLeavesNoAdapter(string mustName, string[] flags)
    {
        using var tmp = new TempDir();
        string outDir = Path.Combine(tmp.Path, "out");
        var (exit, _, error) = CliRunner.Run(["train", "--model", Model, "--data", Data, "--out", outDir, "--batch-size", "2", .. flags]);
        Assert.Equal(1, exit);
        Assert.StartsWith("error: ", error.Split('\n').Last(l => l.Length > 0), StringComparison.Ordinal);
        Assert.Contains(mustName, error, StringComparison.OrdinalIgnoreCase);
        Assert.False(Directory.Exists(outDir), $"a failed run left {outDir} behind");
    }

    [Fact]
    public void UnwritableOutputFailsBeforeTraining()
    {
        using var tmp = new TempDir();
        string blocker = Path.Combine(tmp.Path, "file");
        File.WriteAllText(blocker, "not a folder");
        var (exit, output, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", Path.Combine(blocker, "out"), "--max-steps", "2");
        Assert.Equal(1, exit);
        Assert.Contains("not writable", error, StringComparison.Ordinal);
        Assert.DoesNotContain("trainable parameters", output, StringComparison.Ordinal);
        Assert.Equal(["file"], Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName));
    }

    [Fact]
    public void StreamingTrainingWritesAnAdapterThatChangesTheModel()
    {
        using var tmp = new TempDir();
        string outDir = Path.Combine(tmp.Path, "streamed");
        var (exit, output, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", outDir, "--streaming", "--rank", "4", "--lr", "1e-2", "--max-steps", "12", "--batch-size", "2");
        Assert.True(exit == 0, error);
        Assert.Contains("streamed rows", output, StringComparison.Ordinal);
        Assert.True(File.Exists(Path.Combine(outDir, "adapter_model.safetensors")));
        var baseLoss = Loss(CliRunner.Run("eval", "--model", Model, "--data", Data));
        Assert.True(Loss(CliRunner.Run("eval", "--model", Model, "--data", Data, "--adapter", outDir)) < baseLoss - 1);
    }

    [Fact]
    public void ExportOnnxWritesAModelWithTheAdapterMerged()
    {
        using var tmp = new TempDir();
        string adapter = Path.Combine(tmp.Path, "adapter"), onnx = Path.Combine(tmp.Path, "m.onnx");
        var (exit, _, error) = CliRunner.Run("train", "--model", Model, "--data", Data, "--out", adapter, "--rank", "2", "--max-steps", "3", "--batch-size", "2");
        Assert.True(exit == 0, error);
        (exit, var output, error) = CliRunner.Run("export-onnx", "--model", Model, "--adapter", adapter, "--out", onnx);
        Assert.True(exit == 0, error);
        Assert.StartsWith("wrote ", output, StringComparison.Ordinal);
        Assert.True(new FileInfo(onnx).Length > 10_000);
        (exit, _, error) = CliRunner.Run("export-onnx", "--model", Model, "--out", Path.Combine(onnx, "x.onnx"));
        Assert.Equal(1, exit);
        Assert.Contains("x.onnx", error, StringComparison.Ordinal);

        string shared = Path.Combine(tmp.Path, "base.onnx"), adapterFile = Path.Combine(tmp.Path, "adapters", "a.onnx_adapter");
        (exit, _, error) = CliRunner.Run("export-onnx", "--model", Model, "--adapter", adapter, "--out", shared, "--adapters-as-inputs");
        Assert.True(exit == 0, error);
        (exit, output, error) = CliRunner.Run("export-adapter", "--model", Model, "--adapter", adapter, "--out", adapterFile);
        Assert.True(exit == 0, error);
        Assert.Contains("adapted layers", output, StringComparison.Ordinal);
        Assert.Equal("TORT"u8.ToArray(), File.ReadAllBytes(adapterFile)[4..8]);
        (exit, _, error) = CliRunner.Run("export-adapter", "--model", Model, "--adapter", adapter, "--out", Path.Combine(tmp.Path, "a.onnx"));
        Assert.Equal(1, exit);
        Assert.Contains(".onnx_adapter", error, StringComparison.Ordinal);
        (exit, _, error) = CliRunner.Run("export-onnx", "--model", Model, "--adapter", adapter, "--out", Path.Combine(tmp.Path, "bad.onnx"), "--int4", "--adapters-as-inputs");
        Assert.Equal(1, exit);
        Assert.Contains("--int4", error, StringComparison.Ordinal);
        Assert.False(File.Exists(Path.Combine(tmp.Path, "bad.onnx")));
    }

    [Fact]
    public void AdviseRecommendsAndExplains()
    {
        var (exit, output, error) = CliRunner.Run("advise", "--model", Model, "--data", Data);
        Assert.True(exit == 0, error);
        Assert.Contains("--rank 8 --alpha 32", output, StringComparison.Ordinal);
        Assert.Contains("19 trained tokens", output, StringComparison.Ordinal);
        Assert.True(output.Split('\n').Count(l => l.StartsWith("  - ", StringComparison.Ordinal)) >= 6, output);
    }

    private static double Loss((int Exit, string Out, string Err) run)
    {
        Assert.True(run.Exit == 0, run.Err);
        var m = EvalLine().Match(run.Out);
        Assert.True(m.Success, run.Out);
        return double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    [GeneratedRegex(@"val_loss=([0-9.]+)")]
    private static partial Regex ValLoss();

    [GeneratedRegex(@"^loss=([0-9.]+) tokens=")]
    private static partial Regex EvalLine();
}
