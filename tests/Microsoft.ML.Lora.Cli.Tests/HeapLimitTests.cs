using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>
/// Hostile size fields in a model folder, a tokenizer and an adapter, read by the <c>lora</c> process under a 128 MiB
/// GC heap (<c>DOTNET_GCHeapHardLimit</c>): each is refused by name with exit 1. An allocation made before its size
/// was checked would end in an out-of-memory abort instead.
/// </summary>
public sealed class HeapLimitTests : IDisposable
{
    private const string HeapLimit = "0x8000000";

    private static readonly string RepoRoot = Path.GetDirectoryName(Path.GetDirectoryName(FixturePaths.Root)!)!;

    private static readonly string TinyStories = Path.Combine(RepoRoot, "models", "tinystories-656k");

    private static readonly string Data = Path.Combine(RepoRoot, "examples", "data", "pip-the-penguin.jsonl");

    private readonly TempDir tmp = new();

    public void Dispose() => tmp.Dispose();

    [Fact]
    public void AHugeLayerCountInConfigJsonIsRefusedByName()
    {
        string model = CopyTinyStories("layers");
        Edit(Path.Combine(model, "config.json"), json => json["num_hidden_layers"] = 1 << 30);
        var (exit, error) = Lora("eval", "--model", model, "--data", Data);
        Assert.Equal(1, exit);
        Assert.Contains("'num_hidden_layers' is 1073741824", error, StringComparison.Ordinal);
    }

    [Fact]
    public void ATokenIdAt2Pow31InTokenizerJsonIsRefusedByName()
    {
        string model = CopyTinyStories("tokenizer");
        Edit(Path.Combine(model, "tokenizer.json"), json =>
        {
            var vocab = json["model"]!["vocab"]!.AsObject();
            vocab[vocab.ElementAt(100).Key] = int.MaxValue;
        });
        var (exit, error) = Lora("eval", "--model", model, "--data", Data);
        Assert.Equal(1, exit);
        Assert.Contains("is number 2147483647", error, StringComparison.Ordinal);
    }

    [Fact]
    public void AnAdapterTensorClaimingAnExabyteIsRefusedByName()
    {
        string adapter = Path.Combine(tmp.Path, "adapter");
        Directory.CreateDirectory(adapter);
        File.WriteAllText(Path.Combine(adapter, "adapter_config.json"), """{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}""");
        string name = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
        byte[] header = Encoding.UTF8.GetBytes("{\"" + name + "\": {\"dtype\": \"F32\", \"shape\": [1073741824, 1073741824], \"data_offsets\": [0, 16]}}        ");
        using (var file = File.Create(Path.Combine(adapter, "adapter_model.safetensors")))
        {
            file.Write(BitConverter.GetBytes((ulong)header.Length));
            file.Write(header);
            file.Write(new byte[16]);
        }

        var (exit, error) = Lora("eval", "--model", TinyStories, "--adapter", adapter, "--data", Data);
        Assert.Equal(1, exit);
        Assert.Contains($"tensor '{name}'", error, StringComparison.Ordinal);
        Assert.Contains("shape [1073741824, 1073741824]", error, StringComparison.Ordinal);
    }

    private string CopyTinyStories(string name)
    {
        string copy = Path.Combine(tmp.Path, name);
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(TinyStories))
        {
            File.Copy(file, Path.Combine(copy, Path.GetFileName(file)));
        }

        return copy;
    }

    private static void Edit(string path, Action<JsonObject> edit)
    {
        var json = JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        edit(json);
        File.WriteAllText(path, json.ToJsonString());
    }

    // tests/Microsoft.ML.Lora.Cli.Tests/bin/<Configuration>/<tfm>[/<rid>]/ → src/Microsoft.ML.Lora.Cli/bin/<Configuration>/<tfm>/lora.dll
    private static (int Exit, string Error) Lora(params string[] args)
    {
        string[] parts = Path.GetRelativePath(Path.Combine(RepoRoot, "tests", "Microsoft.ML.Lora.Cli.Tests", "bin"), AppContext.BaseDirectory).Split(Path.DirectorySeparatorChar);
        string dll = Path.Combine(RepoRoot, "src", "Microsoft.ML.Lora.Cli", "bin", parts[0], parts[1], "lora.dll");
        Assert.True(File.Exists(dll), $"the lora CLI is not built at {dll}");
        string host = Environment.ProcessPath is string p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
        var start = new ProcessStartInfo(host, [dll, .. args]) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.Environment["DOTNET_GCHeapHardLimit"] = HeapLimit;
        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"lora {string.Join(' ', args)} ran for 2 minutes under a {HeapLimit}-byte heap");
        }

        process.WaitForExit();
        _ = stdout.Result;
        return (process.ExitCode, stderr.Result);
    }
}
