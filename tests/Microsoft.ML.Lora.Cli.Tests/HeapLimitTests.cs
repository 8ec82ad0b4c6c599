using System.Diagnostics;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>
/// Hostile size fields read by the <c>lora</c> process under a 128 MiB GC heap (<c>DOTNET_GCHeapHardLimit</c>): every
/// size field of every format (config.json, tokenizer.json, adapter_config.json, safetensors headers and shapes, data
/// rows, command-line flags) set to values near 0, 2^31 and 2^63 is refused within seconds by one <c>error:</c> line
/// naming the field, with exit 1. An allocation made before its size was checked would end in an out-of-memory abort
/// instead, a missing check in a stack trace or a hang.
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

    // Near 0, 2^31 and 2^63, as JSON numbers and flag values.
    private static readonly string[] Values = ["0", "-1", "2147483647", "2147483648", "-2147483648", "9223372036854775807", "-9223372036854775808", "18446744073709551616"];

    // Every size field, with the values of Values that are valid for it (and so not expected to fail).
    private static readonly (string Field, string[] Valid)[] Fields =
    [
        .. new[] { "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings", "head_dim" }.Select(static f => ("config." + f, Array.Empty<string>())),
        ("config.num_labels", []), ("config.sliding_window", ["2147483647"]),
        ("tokenizer.vocab", ["0"]), ("tokenizer.added_tokens", ["0"]),
        ("adapter.r", []), ("adapter.rank_pattern", []), ("adapter.shape0", []), ("adapter.shape1", []), ("adapter.header_length", []), ("model.header_length", []),
        ("data.input_ids", ["0"]), ("data.labels", ["0"]), ("data.attention_mask", []),
        .. new[] { "--rank", "--batch-size", "--seq-len", "--grad-accum", "--epochs", "--threads" }.Select(static f => ("train " + f, Array.Empty<string>())),
        ("train --max-steps", ["2147483647"]), ("train --eval-every", ["0", "2147483647"]), ("train --checkpoint-every", ["0", "2147483647"]),
        ("generate --max-new-tokens", []), ("generate --threads", []),
        ("grpo --group-size", []), ("grpo --num-iterations", []), ("grpo --max-new-tokens", []),
    ];

    public static TheoryData<string, string> SizeFieldCases()
    {
        var data = new TheoryData<string, string>();
        foreach (var (field, valid) in Fields)
        {
            foreach (string value in Values.Except(valid))
            {
                // A safetensors header length is an unsigned 64-bit number: the negative values and 2^64 have no encoding.
                if (!field.EndsWith("header_length", StringComparison.Ordinal) || (!value.StartsWith('-') && value != Values[^1]))
                {
                    data.Add(field, value);
                }
            }
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(SizeFieldCases))]
    public void EverySizeFieldOutOfRangeIsOneErrorNamingIt(string field, string value)
    {
        var (args, names) = Case(field, value);
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var (exit, error) = Lora(args);
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        Assert.True(exit == 1, $"{field} = {value}: exit {exit}\n{error}");
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.DoesNotContain(lines, static l => l.StartsWith("at ", StringComparison.Ordinal));
        Assert.True(lines.Length <= 2, $"{field} = {value}: one error line (and where the options are listed) expected:\n{error}");
        Assert.Contains(names, lines[0], StringComparison.Ordinal);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"{field} = {value} took {clock.Elapsed}");
    }

    // The command that reads the field set to the value, and what its error must name.
    private (string[] Args, string Names) Case(string field, string value)
    {
        string dir = Path.Combine(tmp.Path, Guid.NewGuid().ToString("N"));
        string[] eval = ["eval", "--data", Data];
        string[] Eval(string model, params string[] more) => [.. eval, "--model", model, .. more];
        JsonNode number = JsonNode.Parse(value)!;
        switch (field.Split('.', 2))
        {
            case ["config", string key]:
                string model = CopyTinyStories(dir, key == "sliding_window" ? FixturePaths.Case("mistral_window") : TinyStories);
                Edit(Path.Combine(model, "config.json"), json =>
                {
                    json[key] = number;
                    if (key == "num_labels")
                    {
                        json["architectures"] = new JsonArray("LlamaForSequenceClassification");
                    }
                });
                return (key == "sliding_window" ? ["eval", "--model", model, "--data", Path.Combine(model, "eval.jsonl")] : Eval(model), $"'{key}'");
            case ["tokenizer", string key]:
                model = CopyTinyStories(dir, TinyStories);
                Edit(Path.Combine(model, "tokenizer.json"), json =>
                {
                    if (key == "vocab")
                    {
                        var vocab = json["model"]!["vocab"]!.AsObject();
                        vocab[vocab.ElementAt(100).Key] = number;
                    }
                    else
                    {
                        json["added_tokens"]!.AsArray()[0]!["id"] = number;
                    }
                });
                return (Eval(model), "tokenizer.json");
            case ["adapter", string key]:
                Directory.CreateDirectory(dir);
                var config = JsonNode.Parse("""{"peft_type": "LORA", "task_type": "CAUSAL_LM", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj"]}""")!.AsObject();
                if (key is "r")
                {
                    config["r"] = number;
                }
                else if (key is "rank_pattern")
                {
                    config["rank_pattern"] = new JsonObject { ["q_proj"] = number };
                }

                File.WriteAllText(Path.Combine(dir, "adapter_config.json"), config.ToJsonString());
                WriteAdapterTensors(Path.Combine(dir, "adapter_model.safetensors"), key, value);
                return (Eval(TinyStories, "--adapter", dir), key switch { "r" => "'r'", "rank_pattern" => "rank_pattern", "header_length" => "adapter_model.safetensors", _ => "lora_A" });
            case ["model", _]:
                model = CopyTinyStories(dir, TinyStories);
                using (var file = File.OpenWrite(Path.Combine(model, "model.safetensors")))
                {
                    file.Write(BitConverter.GetBytes(ulong.Parse(value, System.Globalization.CultureInfo.InvariantCulture)));
                }

                return (Eval(model), "model.safetensors");
            case ["data", string key]:
                Directory.CreateDirectory(dir);
                string rows = Path.Combine(dir, "rows.jsonl");
                File.WriteAllText(rows, key switch
                {
                    "input_ids" => $$"""{"input_ids": [1, {{value}}, 3]}""",
                    "labels" => $$"""{"input_ids": [1, 2, 3], "labels": [1, {{value}}, 3]}""",
                    _ => $$"""{"input_ids": [1, 2, 3], "attention_mask": [1, {{value}}, 1]}""",
                } + "\n");
                return (["eval", "--model", TinyStories, "--data", rows], $"line 1: \"{key}\"[1]");
            default:
                string[] parts = field.Split(' ');
                string[] common = parts[0] switch
                {
                    "generate" => ["generate", "--model", TinyStories, "--prompt", "Once"],
                    "grpo" => ["grpo", "--model", TinyStories, "--data", Prompts(dir), "--reward", "regex:big", "--max-steps", "1", "--out", dir],
                    _ => ["train", "--model", TinyStories, "--data", Data, "--out", dir, .. parts[1] == "--max-steps" ? Array.Empty<string>() : ["--max-steps", "1"]],
                };
                return ([.. common, parts[1], value], parts[1]);
        }
    }

    private static string Prompts(string dir)
    {
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, "prompts.jsonl");
        File.WriteAllText(path, "{\"prompt\": \"Once upon a time\"}\n");
        return path;
    }

    // q_proj adapters of every layer of TinyStories; with `key` a shape dimension or the header length, that field of
    // layer 0's lora_A holds `value` instead.
    private static void WriteAdapterTensors(string path, string key, string value)
    {
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(TinyStories, "config.json")))!;
        int hidden = config["hidden_size"]!.GetValue<int>(), layers = config["num_hidden_layers"]!.GetValue<int>();
        var header = new StringBuilder("{");
        long offset = 0;
        for (int l = 0; l < layers; l++)
        {
            foreach (var (name, rows, columns) in new[] { ("lora_A", 2, hidden), ("lora_B", hidden, 2) })
            {
                string shape = l == 0 && name == "lora_A" && key is "shape0" or "shape1" ? (key == "shape0" ? $"[{value}, {columns}]" : $"[{rows}, {value}]") : $"[{rows}, {columns}]";
                long bytes = 4L * rows * columns;
                header.Append(System.Globalization.CultureInfo.InvariantCulture, $"{(header.Length > 1 ? ", " : string.Empty)}\"base_model.model.model.layers.{l}.self_attn.q_proj.{name}.weight\": {{\"dtype\": \"F32\", \"shape\": {shape}, \"data_offsets\": [{offset}, {offset + bytes}]}}");
                offset += bytes;
            }
        }

        byte[] json = Encoding.UTF8.GetBytes(header.Append('}').ToString().PadRight((header.Length + 7) / 8 * 8));
        using var file = File.Create(path);
        file.Write(BitConverter.GetBytes(key == "header_length" ? ulong.Parse(value, System.Globalization.CultureInfo.InvariantCulture) : (ulong)json.Length));
        file.Write(json);
        file.Write(new byte[offset]);
    }

    private string CopyTinyStories(string name) => CopyTinyStories(Path.Combine(tmp.Path, name), TinyStories);

    private static string CopyTinyStories(string copy, string from)
    {
        Directory.CreateDirectory(copy);
        foreach (string file in Directory.GetFiles(from))
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
