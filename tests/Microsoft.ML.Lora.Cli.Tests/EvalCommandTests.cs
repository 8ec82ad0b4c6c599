using System.Globalization;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora eval</c> against the reference's expected_eval.json, and its errors on bad input.</summary>
public sealed partial class EvalCommandTests
{
    // F32 engine vs float64 reference over 19 tokens of a 2-layer model: see ReferenceModelTests.
    private const double F32Tolerance = 1e-4;

    public static TheoryData<string> Cases() => new(FixturePaths.Cases);

    [Theory]
    [MemberData(nameof(Cases))]
    public void EvalPrintsTheReferenceLossAndTokenCount(string name)
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixturePaths.Case(name), "expected_eval.json")));
        double refLoss = expected.RootElement.GetProperty("loss").GetDouble();
        long refTokens = expected.RootElement.GetProperty("tokens").GetInt64();
        foreach (string batchSize in new[] { "1", "2", "8" })
        {
            var (exit, output, error) = CliRunner.Run("eval", "--model", FixturePaths.Case(name), "--data", Path.Combine(FixturePaths.Case(name), "eval.jsonl"), "--batch-size", batchSize);
            Assert.True(exit == 0, error);
            var (loss, tokens) = Parse(output);
            Assert.Equal(refTokens, tokens);
            Assert.Equal(refLoss, loss, refLoss * F32Tolerance);
        }
    }

    [Fact]
    public void EvalRunsInBf16()
    {
        string dir = FixturePaths.Case("llama_gqa");
        var (exit, output, error) = CliRunner.Run("eval", "--model", dir, "--data", Path.Combine(dir, "eval.jsonl"), "--dtype", "bf16", "--threads", "1");
        Assert.True(exit == 0, error);
        var (loss, tokens) = Parse(output);
        Assert.Equal(19, tokens);
        Assert.True(double.IsFinite(loss) && loss > 0, output);
    }

    [Fact]
    public void TruncatedSafetensorsIsAClearError()
    {
        using var tmp = new TempDir();
        string model = tmp.CopyModel("llama_gqa");
        string file = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        File.WriteAllBytes(file, bytes[..(bytes.Length / 2)]);
        AssertBadInput(tmp, model, "model.safetensors");
    }

    [Fact]
    public void HeaderLengthLargerThanFileIsAClearError()
    {
        using var tmp = new TempDir();
        string model = tmp.CopyModel("llama_gqa");
        string file = Path.Combine(model, "model.safetensors");
        var bytes = File.ReadAllBytes(file);
        BitConverter.TryWriteBytes(bytes.AsSpan(0, 8), (ulong)bytes.Length * 4);
        File.WriteAllBytes(file, bytes);
        AssertBadInput(tmp, model, "model.safetensors");
    }

    [Fact]
    public void TensorWhoseBytesDisagreeWithItsShapeIsAClearError()
    {
        using var tmp = new TempDir();
        string model = tmp.CopyModel("llama_gqa");
        RewriteHeader(Path.Combine(model, "model.safetensors"), header =>
        {
            var offsets = header["model.norm.weight"]!["data_offsets"]!.AsArray();
            offsets[1] = offsets[1]!.GetValue<long>() - 4;
        });
        AssertBadInput(tmp, model, "model.norm.weight");
    }

    [Fact]
    public void MissingTensorIsAClearError()
    {
        using var tmp = new TempDir();
        string model = tmp.CopyModel("llama_gqa");
        string file = Path.Combine(model, "model.safetensors");
        using (var source = Formats.SafeTensorsFile.Open(Path.Combine(FixturePaths.Case("llama_gqa"), "model.safetensors")))
        {
            var keep = source.Tensors.Keys.Where(k => k != "model.layers.1.mlp.up_proj.weight").ToList();
            var entries = keep.Select(k => Formats.SafeTensorEntry.FromFloats(k, source.Info(k).Shape, source.ReadFloats(k))).ToList();
            Formats.SafeTensorsWriter.Write(file, entries);
        }

        AssertBadInput(tmp, model, "model.layers.1.mlp.up_proj.weight");
    }

    [Fact]
    public void UnknownArchitectureIsAClearError()
    {
        using var tmp = new TempDir();
        string model = tmp.CopyModel("llama_gqa");
        string config = Path.Combine(model, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("LlamaForCausalLM", "GPT2LMHeadModel", StringComparison.Ordinal).Replace("\"llama\"", "\"gpt2\"", StringComparison.Ordinal));
        AssertBadInput(tmp, model, "GPT2LMHeadModel");
    }

    [Fact]
    public void TokenIdOutsideVocabularyNamesTheRow()
    {
        using var tmp = new TempDir();
        string data = Path.Combine(tmp.Path, "data.jsonl");
        File.WriteAllText(data, "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [4, 64, 5]}\n");
        AssertBadInput(tmp, FixturePaths.Case("llama_gqa"), "data.jsonl line 2", data);
    }

    [Fact]
    public void ARowLongerThanTheModelsPositionsIsRefusedNamingItsLine()
    {
        // llama_tied_headdim has 256 positions; the second row has 300 tokens.
        using var tmp = new TempDir();
        string data = Path.Combine(tmp.Path, "long.jsonl");
        File.WriteAllText(data, "{\"input_ids\": [1, 2, 3]}\n{\"input_ids\": [" + string.Join(", ", Enumerable.Repeat(7, 300)) + "]}\n");
        var (exit, _, error) = CliRunner.Run("eval", "--model", FixturePaths.Case("llama_tied_headdim"), "--data", data);
        Assert.Equal(1, exit);
        Assert.Contains("line 2: 300 tokens, more than the model's max_position_embeddings 256", error, StringComparison.Ordinal);
    }

    [Fact]
    public void EmptyDataFileIsAClearError()
    {
        using var tmp = new TempDir();
        string data = Path.Combine(tmp.Path, "empty.jsonl");
        File.WriteAllText(data, string.Empty);
        AssertBadInput(tmp, FixturePaths.Case("llama_gqa"), "empty.jsonl", data);
    }

    [Fact]
    public void MissingModelFolderAndBadOptionsFail()
    {
        using var tmp = new TempDir();
        AssertBadInput(tmp, Path.Combine(tmp.Path, "nope"), "config.json");
        var (exit, _, _) = CliRunner.Run("eval", "--model", FixturePaths.Case("llama_gqa"), "--data", Path.Combine(FixturePaths.Case("llama_gqa"), "eval.jsonl"), "--dtype", "f8");
        Assert.NotEqual(0, exit);
        (exit, _, _) = CliRunner.Run("eval", "--data", "x.jsonl");
        Assert.NotEqual(0, exit);
    }

    private static void AssertBadInput(TempDir tmp, string model, string mustName, string? data = null)
    {
        var before = tmp.Snapshot();
        var (exit, output, error) = CliRunner.Run("eval", "--model", model, "--data", data ?? Path.Combine(FixturePaths.Case("llama_gqa"), "eval.jsonl"));
        Assert.Equal(1, exit);
        Assert.Equal(string.Empty, output);
        Assert.StartsWith("error: ", error, StringComparison.Ordinal);
        Assert.Contains(mustName, error, StringComparison.Ordinal);
        Assert.Equal(before, tmp.Snapshot());
    }

    private static (double Loss, long Tokens) Parse(string output)
    {
        var m = EvalLine().Match(output);
        Assert.True(m.Success, $"unexpected output: {output}");
        return (double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
    }

    // Rewrites a safetensors header in place (same data), padding it to 8 bytes as writers do.
    private static void RewriteHeader(string file, Action<JsonObject> edit)
    {
        var bytes = File.ReadAllBytes(file);
        int n = checked((int)BitConverter.ToUInt64(bytes, 0));
        var header = JsonNode.Parse(bytes.AsSpan(8, n))!.AsObject();
        edit(header);
        string json = header.ToJsonString();
        json += new string(' ', (8 - (json.Length % 8)) % 8);
        var newHeader = System.Text.Encoding.UTF8.GetBytes(json);
        using var stream = File.Create(file);
        stream.Write(BitConverter.GetBytes((ulong)newHeader.Length));
        stream.Write(newHeader);
        stream.Write(bytes.AsSpan(8 + n));
    }

    [GeneratedRegex(@"^loss=([0-9.]+) tokens=([0-9]+)\s*$")]
    private static partial Regex EvalLine();
}

/// <summary><c>lora eval --adapter</c> with adapters written by the reference script in PEFT's layout.</summary>
public sealed class EvalWithAdapterTests
{
    // F32 engine vs the float64 reference (see ReferenceModelTests).
    private const double F32Tolerance = 1e-4;

    [Theory]
    [InlineData("peft_llama_gqa", "llama_gqa")]
    [InlineData("peft_llama_gqa_rslora", "llama_gqa")]
    [InlineData("peft_qwen2_bias", "qwen2_bias")]
    [InlineData("peft_qwen3", "qwen3")]
    [InlineData("peft_phi3", "phi3")]
    [InlineData("peft_gemma2", "gemma2")]
    public void EvalWithAReferencePeftAdapterMatchesTheReference(string adapter, string baseCase)
    {
        using var expected = JsonDocument.Parse(File.ReadAllText(Path.Combine(FixturePaths.Case(adapter), "eval_expected.json")));
        double refLoss = expected.RootElement.GetProperty("loss").GetDouble();
        string data = Path.Combine(FixturePaths.Case(baseCase), "eval.jsonl");
        var (exit, output, error) = CliRunner.Run("eval", "--model", FixturePaths.Case(baseCase), "--data", data, "--adapter", FixturePaths.Case(adapter));
        Assert.True(exit == 0, error);
        var m = Regex.Match(output, @"^loss=([0-9.]+) tokens=([0-9]+)");
        Assert.True(m.Success, output);
        Assert.Equal(expected.RootElement.GetProperty("tokens").GetInt64(), long.Parse(m.Groups[2].Value, CultureInfo.InvariantCulture));
        Assert.Equal(refLoss, double.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture), refLoss * F32Tolerance);
    }
}
