using System.Buffers.Binary;
using System.Text;
using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Xunit.Abstractions;

namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>
/// Seeded fuzzing of the readers: whatever the bytes, only InvalidDataException or NotSupportedException
/// may come out. Each test also counts accepted and rejected inputs so that a fuzzer that only ever
/// produces garbage (or never garbage) is noticed.
/// </summary>
public class FormatsFuzzTests(ITestOutputHelper output)
{
    private const string JsonAlphabet = "{}[]\",:0123456789-+.eE \ntrufalsn\\é\0";

    private static readonly string[] Numbers = ["0", "-1", "1", "3", "4", "7", "8", "24", "1.5", "1e3", "-0", "2147483648", "9223372036854775807", "18446744073709551616", "1e400", "\"4\"", "null"];

    [Fact]
    public void SafeTensorsReaderOnlyThrowsInvalidData()
    {
        using var dir = new TempDir();
        byte[] valid = File.ReadAllBytes(RawSafeTensors.WriteSample(dir));
        int headerLength = (int)BinaryPrimitives.ReadUInt64LittleEndian(valid);
        string header = Encoding.UTF8.GetString(valid, 8, headerLength);
        byte[] data = valid[(8 + headerLength)..];
        var random = new Random(20261122);
        string path = dir.File("fuzz.safetensors");
        int accepted = 0, rejected = 0;

        for (int i = 0; i < 2500; i++)
        {
            byte[] bytes = (i % 6) switch
            {
                5 => FlipData(random, valid, 8 + headerLength),
                0 => RandomBytes(random),
                1 => valid[..random.Next(valid.Length)],
                2 => FlipBytes(random, valid, 8 + headerLength),
                3 => RawSafeTensors.Build(ReplaceNumber(random, header), data, random.Next(8) == 0 ? (ulong)random.Next(200) : null),
                _ => RawSafeTensors.Build(MutateText(random, header), data),
            };

            File.WriteAllBytes(path, bytes);
            try
            {
                using var file = SafeTensorsFile.Open(path);
                ReadEverything(file);
                accepted++;
            }
            catch (InvalidDataException e)
            {
                Assert.Contains(path, e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i}: {e.GetType().Name} leaked: {e.Message}\nheader: {Encoding.UTF8.GetString(bytes, 8, Math.Max(0, Math.Min(bytes.Length - 8, 400)))}\n{e}");
            }
        }

        output.WriteLine($"safetensors: accepted {accepted}, rejected {rejected}");

        // Data-only flips (1 in 6) always stay valid; most header edits must be caught.
        Assert.True(accepted > 400 && rejected > 1500, $"accepted {accepted}, rejected {rejected}");
    }

    [Fact]
    public void ShardIndexReaderOnlyThrowsInvalidData()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, Enumerable.Range(0, 3).Select(i => SafeTensorEntry.FromFloats($"t{i}", [2], [i, i])), maxShardBytes: 8);
        string indexPath = dir.File(SafeTensorsFolder.IndexFileName);
        string index = File.ReadAllText(indexPath);
        var random = new Random(7);
        int accepted = 0, rejected = 0;
        for (int i = 0; i < 400; i++)
        {
            File.WriteAllBytes(indexPath, Encoding.UTF8.GetBytes(MutateText(random, index)));
            try
            {
                using var folder = SafeTensorsFolder.Open(dir.Path);
                foreach (string name in folder.Names)
                {
                    folder.ReadFloats(name);
                }

                accepted++;
            }
            catch (InvalidDataException e)
            {
                Assert.Contains(dir.Path, e.Message);
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i}: {e.GetType().Name} leaked: {e.Message}\n{e}");
            }
        }

        output.WriteLine($"index: accepted {accepted}, rejected {rejected}");
        Assert.True(accepted > 20 && rejected > 100, $"accepted {accepted}, rejected {rejected}");
    }

    [Fact]
    public void ConfigParserOnlyThrowsInvalidDataOrNotSupported()
    {
        var random = new Random(42);
        string[] bases = RealWorldConfigs.All.ToArray();
        int accepted = 0, rejected = 0, unsupported = 0;
        for (int i = 0; i < 2000; i++)
        {
            string baseJson = bases[random.Next(bases.Length)];
            string json = (i % 3) switch
            {
                0 => MutateText(random, baseJson),
                1 => ReplaceNumber(random, baseJson),
                _ => ReplaceValue(random, baseJson),
            };

            try
            {
                var config = LlamaConfig.Parse(json, "fuzz/config.json");
                Assert.Equal(config, LlamaConfig.Parse(config.ToJson(), "again"));
                accepted++;
            }
            catch (InvalidDataException e)
            {
                Assert.Contains("fuzz/config.json", e.Message);
                rejected++;
            }
            catch (NotSupportedException e)
            {
                Assert.Contains("fuzz/config.json", e.Message);
                unsupported++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i}: {e.GetType().Name} leaked: {e.Message}\njson: {json}\n{e}");
            }
        }

        output.WriteLine($"config: accepted {accepted}, rejected {rejected}, unsupported {unsupported}");
        Assert.True(accepted > 100 && rejected > 500 && unsupported > 10, $"accepted {accepted}, rejected {rejected}, unsupported {unsupported}");
    }

    [Fact]
    public void ConfigLoaderOnlyThrowsInvalidDataOrNotSupportedOnRandomBytes()
    {
        using var dir = new TempDir();
        string path = dir.File("config.json");
        byte[] valid = Encoding.UTF8.GetBytes(RealWorldConfigs.Llama32_1B);
        var random = new Random(99);
        for (int i = 0; i < 300; i++)
        {
            File.WriteAllBytes(path, i % 2 == 0 ? FlipBytes(random, valid, valid.Length) : RandomBytes(random));
            try
            {
                LlamaConfig.Load(path);
            }
            catch (Exception e) when (e is InvalidDataException or NotSupportedException)
            {
                Assert.Contains(path, e.Message);
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i}: {e.GetType().Name} leaked: {e.Message}\n{e}");
            }
        }
    }

    private static void ReadEverything(SafeTensorsFile file)
    {
        foreach (var info in file.Tensors.Values)
        {
            _ = file.GetBytes(info.Name);
            if (SafeTensorsDTypes.IsFloat(info.DType))
            {
                file.Read(info.Name, DType.F32).Dispose();
                file.Read(info.Name, DType.BF16).Dispose();
                file.ReadFloats(info.Name);
            }
            else if (info.DType is SafeTensorsDTypes.I64 or SafeTensorsDTypes.I32)
            {
                file.ReadInt64(info.Name);
            }
        }
    }

    private static byte[] RandomBytes(Random random)
    {
        var bytes = new byte[random.Next(0, 300)];
        random.NextBytes(bytes);
        if (bytes.Length >= 8 && random.Next(2) == 0)
        {
            // A plausible length so that the JSON parser sees the garbage.
            BinaryPrimitives.WriteUInt64LittleEndian(bytes, (ulong)random.Next(0, bytes.Length - 7));
        }

        return bytes;
    }

    private static byte[] FlipBytes(Random random, byte[] valid, int hotEnd)
    {
        var bytes = (byte[])valid.Clone();
        int flips = random.Next(1, 5);
        for (int k = 0; k < flips; k++)
        {
            int at = random.Next(4) == 0 ? random.Next(bytes.Length) : random.Next(Math.Min(hotEnd, bytes.Length));
            bytes[at] = random.Next(2) == 0 ? (byte)random.Next(256) : (byte)JsonAlphabet[random.Next(JsonAlphabet.Length)];
        }

        return bytes;
    }

    /// <summary>Random bytes in the data section: the header stays valid, the values become any bit pattern (NaN, ∞, subnormal).</summary>
    private static byte[] FlipData(Random random, byte[] valid, int dataStart)
    {
        var bytes = (byte[])valid.Clone();
        for (int k = 0; k < 8; k++)
        {
            bytes[random.Next(dataStart, bytes.Length)] = (byte)random.Next(256);
        }

        return bytes;
    }

    /// <summary>Inserts, deletes or replaces a few characters (including an unpaired surrogate).</summary>
    private static string MutateText(Random random, string text)
    {
        var sb = new StringBuilder(text);
        int edits = random.Next(1, 4);
        for (int k = 0; k < edits && sb.Length > 0; k++)
        {
            int at = random.Next(sb.Length);
            char c = random.Next(30) == 0 ? '\uD800' : JsonAlphabet[random.Next(JsonAlphabet.Length)];
            switch (random.Next(3))
            {
                case 0:
                    sb.Insert(at, c);
                    break;
                case 1:
                    sb.Remove(at, 1);
                    break;
                default:
                    sb[at] = c;
                    break;
            }
        }

        return sb.ToString();
    }

    /// <summary>Replaces one run of digits by a number from <see cref="Numbers"/>, keeping the text JSON-shaped.</summary>
    private static string ReplaceNumber(Random random, string text)
    {
        var runs = System.Text.RegularExpressions.Regex.Matches(text, "-?[0-9][0-9.eE+-]*");
        if (runs.Count == 0)
        {
            return text;
        }

        var run = runs[random.Next(runs.Count)];
        return string.Concat(text.AsSpan(0, run.Index), Numbers[random.Next(Numbers.Length)], text.AsSpan(run.Index + run.Length));
    }

    /// <summary>Replaces, removes or adds one top-level field of a config with a value of a random type.</summary>
    private static string ReplaceValue(Random random, string json)
    {
        var node = JsonNode.Parse(json)!.AsObject();
        var keys = node.Select(kv => kv.Key).ToArray();
        string key = keys[random.Next(keys.Length)];
        JsonNode?[] values =
        [
            null, 0, -1, 3, 64, 1.5, 1e-300, "silu", "gelu", "llama", "mistral", "qwen2", "gemma", true, false,
            new JsonArray(), new JsonArray("MistralForCausalLM"), new JsonArray(1), new JsonObject(),
            new JsonObject { ["type"] = "yarn", ["factor"] = 2 }, new JsonObject { ["rope_type"] = "llama3", ["factor"] = 8 },
            new JsonObject { ["rope_type"] = "linear", ["factor"] = 0.5 },
        ];
        switch (random.Next(4))
        {
            case 0:
                node.Remove(key);
                break;
            case 1:
                node[key] = values[random.Next(values.Length)]?.DeepClone();
                break;
            case 2:
                node["head_dim"] = values[random.Next(values.Length)]?.DeepClone();
                break;
            default:
                node[key] = values[random.Next(values.Length)]?.DeepClone();
                node[keys[random.Next(keys.Length)]] = values[random.Next(values.Length)]?.DeepClone();
                break;
        }

        return node.ToJsonString();
    }
}
