using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Tests.Lora;
using Microsoft.ML.Lora.Tests.Models;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>Exported models run in real ONNX Runtime and give our forward pass's logits.</summary>
public sealed class LlamaOnnxExportTests : IDisposable
{
    // Same F32 weights, another runtime's kernels (summation order, exp): ≤ 1e-4 of the logit scale,
    // the bar DESIGN.md sets; measured ~1e-6 on these models.
    private const double F32Tolerance = 1e-4;

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-onnx-" + Guid.NewGuid().ToString("N"));

    public LlamaOnnxExportTests() => Directory.CreateDirectory(root);

    public void Dispose() => Directory.Delete(root, recursive: true);

    public static TheoryData<string, bool> Cases()
    {
        var data = new TheoryData<string, bool>();
        foreach (string name in FixturePaths.Cases)
        {
            data.Add(name, false);
        }

        data.Add("llama_gqa", true);
        data.Add("qwen2_bias", true);
        data.Add("qwen3", true);
        data.Add("phi3", true);
        data.Add("gemma2", true);
        data.Add("gemma3", true);
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void OnnxRuntimeLogitsEqualOurForward(string name, bool withAdapter)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        if (withAdapter)
        {
            var random = new Random(3);
            foreach (var a in model.AddAdapter(new LoraOptions { Rank = 4 }, seed: 2))
            {
                LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.3);
            }
        }

        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));
        var batch = ReferenceModelTests.BatchOf(expected);
        var ours = LoraAdapterTests.Logits(model, batch);
        string path = Path.Combine(root, name + ".onnx");
        LlamaOnnxExporter.Export(model, path);
        var outputs = Run(path, batch.InputIds, Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T);
        var logits = outputs.Tensors["logits"];
        Assert.Equal([batch.B, batch.T, model.Config.VocabSize], logits.Dims);
        ReferenceModelTests.AssertClose(ours, logits.Floats!, F32Tolerance, $"{name}{(withAdapter ? " + adapter" : string.Empty)} ONNX Runtime logits");
    }

    [Fact]
    public void RightPaddedRowsMatchAtTheirRealPositionsAndExternalDataRuns()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        int v = model.Config.VocabSize;
        int[] longRow = [1, 5, 9, 2, 7, 11], shortRow = [3, 8, 60];
        string path = Path.Combine(root, "external", "model.onnx");
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        LlamaOnnxExporter.Export(model, path, new OnnxExportOptions { ExternalData = true });
        Assert.True(File.Exists(path + ".data"));

        int[] ids = [.. longRow, .. shortRow, 0, 0, 0];
        long[] mask = [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0];
        var logits = Run(path, ids, mask, 2, 6).Tensors["logits"].Floats!;
        var shortAlone = LoraAdapterTests.Logits(model, CausalLmBatch.FromRows([shortRow]));
        ReferenceModelTests.AssertClose(shortAlone, logits[(6 * v)..(9 * v)], F32Tolerance, "padded row's real positions");
        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(model, CausalLmBatch.FromRows([longRow])), logits[..(6 * v)], F32Tolerance, "unpadded row");
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("qwen2_bias")]
    [InlineData("qwen3")]
    [InlineData("qwen2_window")]
    [InlineData("phi3")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    public void KvCacheExportGeneratesOurGreedyTokensInOnnxRuntime(string name)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        var config = model.Config;
        int[] prompt = [1, 5, 9];
        const int steps = 10;
        var ours = Generator.Generate(model, prompt, new GenerationOptions { MaxNewTokens = steps }).ToList();
        string path = Path.Combine(root, name + "-kv.onnx");
        LlamaOnnxExporter.Export(model, path, new OnnxExportOptions { KvCache = true });

        // Prefill with an empty past, then one token per step, feeding each present back as the next past.
        int[] emptyDims = [1, config.NumKeyValueHeads, 0, config.HeadDim];
        var past = Enumerable.Range(0, config.NumHiddenLayers)
            .SelectMany(i => new[] { ($"past_key_values.{i}.key", OnnxInput.Float32([], emptyDims)), ($"past_key_values.{i}.value", OnnxInput.Float32([], emptyDims)) })
            .ToDictionary(p => p.Item1, p => p.Item2);
        var generated = new List<int>();
        int[] input = prompt;
        int pastLength = 0;
        for (int step = 0; step < steps; step++)
        {
            var inputs = new Dictionary<string, OnnxInput>(past)
            {
                ["input_ids"] = OnnxInput.Int64(input.Select(i => (long)i).ToArray(), 1, input.Length),
                ["position_ids"] = OnnxInput.Int64(Enumerable.Range(pastLength, input.Length).Select(i => (long)i).ToArray(), 1, input.Length),
                ["attention_mask"] = OnnxInput.Int64(Enumerable.Repeat(1L, pastLength + input.Length).ToArray(), 1, pastLength + input.Length),
            };
            var outputs = OnnxRuntimeChecker.Run(path, inputs).Tensors;
            var logits = outputs["logits"].Floats!;
            int next = Sampler.ArgMax(logits.AsSpan((input.Length - 1) * config.VocabSize, config.VocabSize));
            generated.Add(next);
            for (int i = 0; i < config.NumHiddenLayers; i++)
            {
                foreach (string kind in new[] { "key", "value" })
                {
                    var present = outputs[$"present.{i}.{kind}"];
                    Assert.Equal([1, config.NumKeyValueHeads, pastLength + input.Length, config.HeadDim], present.Dims);
                    past[$"past_key_values.{i}.{kind}"] = OnnxInput.Float32(present.Floats!, present.Dims);
                }
            }

            pastLength += input.Length;
            input = [next];
        }

        Assert.Equal(ours, generated);
    }

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("llama_tied_headdim")]
    public void Float16WeightsGiveTheLogitsOfTheHalfRoundedModel(string name)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        string f32 = Path.Combine(root, name + "-f32.onnx"), f16 = Path.Combine(root, name + "-f16.onnx");
        LlamaOnnxExporter.Export(model, f32);
        LlamaOnnxExporter.Export(model, f16, new OnnxExportOptions { Float16Weights = true });
        // Every exported weight element (embedding, each Linear incl. a tied head's transposed copy) saves
        // 2 bytes; the RoPE tables, norms and biases stay F32.
        long weightElements = model.EmbedTokens.Value.Length + model.Linears().Sum(l => l.Weight.Value.Length);
        long saved = new FileInfo(f32).Length - new FileInfo(f16).Length;
        Assert.InRange(saved, 2 * weightElements - 4096, 2 * weightElements);

        // The same weights rounded to float16 (nearest even) in our own model: the exported function exactly.
        foreach (var p in model.Linears().Select(l => l.Weight).Append(model.EmbedTokens).Distinct())
        {
            var values = p.Value.AsF32();
            for (int i = 0; i < values.Length; i++)
            {
                values[i] = (float)(Half)values[i];
            }
        }

        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));
        var batch = ReferenceModelTests.BatchOf(expected);
        var logits = Run(f16, batch.InputIds, Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T).Tensors["logits"].Floats!;
        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(model, batch), logits, F32Tolerance, $"{name} fp16-weight logits");
    }

    [Fact]
    public void AdaptersAsInputsServeTwoAdaptersFromOneFile()
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case("qwen2_bias"), "expected.safetensors"));
        var batch = ReferenceModelTests.BatchOf(expected);
        LlamaForCausalLM WithAdapter(int rank, int seed)
        {
            var m = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
            var random = new Random(seed);
            foreach (var a in m.AddAdapter(new LoraOptions { Rank = rank, Alpha = 8 }, seed: seed))
            {
                LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.3);
            }

            return m;
        }

        using var first = WithAdapter(4, 1);
        using var second = WithAdapter(2, 2);
        string path = Path.Combine(root, "adapters-as-inputs.onnx");
        LlamaOnnxExporter.Export(first, path, new OnnxExportOptions { AdaptersAsInputs = true });

        float[] RunWith(LlamaForCausalLM adapted, bool zeroB = false)
        {
            var inputs = new Dictionary<string, OnnxInput>
            {
                ["input_ids"] = OnnxInput.Int64(batch.InputIds.Select(i => (long)i).ToArray(), batch.B, batch.T),
                ["attention_mask"] = OnnxInput.Int64(Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T),
            };
            foreach (var (name, (shape, values)) in LlamaOnnxExporter.AdapterInputs(adapted))
            {
                inputs[name] = OnnxInput.Float32(zeroB && name.EndsWith(".lora_B", StringComparison.Ordinal) ? new float[values.Length] : values, shape);
            }

            return OnnxRuntimeChecker.Run(path, inputs).Tensors["logits"].Floats!;
        }

        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(first, batch), RunWith(first), F32Tolerance, "first adapter");
        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(second, batch), RunWith(second), F32Tolerance, "second adapter (other rank)");
        using var plain = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(plain, batch), RunWith(second, zeroB: true), F32Tolerance, "B = 0 is the base model");
        Assert.Throws<ArgumentException>(() => LlamaOnnxExporter.Export(plain, Path.Combine(root, "none.onnx"), new OnnxExportOptions { AdaptersAsInputs = true }));

        // Nothing fed: the zero defaults make the file the base model.
        var baseOnly = new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64(batch.InputIds.Select(i => (long)i).ToArray(), batch.B, batch.T),
            ["attention_mask"] = OnnxInput.Int64(Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T),
        };
        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(plain, batch), OnnxRuntimeChecker.Run(path, baseOnly).Tensors["logits"].Floats!, F32Tolerance, "no adapter fed");

        // Each adapter as an ONNX Runtime adapter file, activated through RunOptions: the merged model's logits.
        foreach (var (adapted, label) in new[] { (first, "first"), (second, "second") })
        {
            string adapterFile = Path.Combine(root, "adapters", label + OnnxAdapterFile.Extension);
            LlamaOnnxExporter.ExportAdapter(adapted, adapterFile);
            var viaFile = OnnxRuntimeChecker.Run(path, baseOnly, adapterFile).Tensors["logits"].Floats!;
            adapted.MergeAndUnload();
            ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(adapted, batch), viaFile, F32Tolerance, $"{label} .onnx_adapter in ONNX Runtime vs the merged model");
        }
    }

    [Fact]
    public void AnAdapterFileForAnotherBaseIsRefusedNamingTheParameter()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        model.AddAdapter(new LoraOptions { Rank = 2 }, seed: 1);
        string basePath = Path.Combine(root, "base.onnx");
        LlamaOnnxExporter.Export(model, basePath, new OnnxExportOptions { AdaptersAsInputs = true });
        var feeds = new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64([1, 5, 9], 1, 3),
            ["attention_mask"] = OnnxInput.Int64([1, 1, 1], 1, 3),
        };

        // Another architecture's adapter: other module names.
        using var other = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        other.AddAdapter(new LoraOptions { Rank = 2, TargetModules = ["gate_proj"] }, seed: 1);
        string foreign = Path.Combine(root, "foreign" + OnnxAdapterFile.Extension);
        LlamaOnnxExporter.ExportAdapter(other, foreign);
        var e = Assert.Throws<OnnxRuntimeCheckerException>(() => OnnxRuntimeChecker.Run(basePath, feeds, foreign));
        Assert.Contains("gate_proj", e.Message, StringComparison.Ordinal);

        // Same names, wrong width: lora_A with one column too many.
        string name = LlamaOnnxExporter.AdapterInputs(model).Keys.First(static k => k.EndsWith(".lora_A", StringComparison.Ordinal));
        var (shape, values) = LlamaOnnxExporter.AdapterInputs(model)[name];
        string wide = Path.Combine(root, "wide" + OnnxAdapterFile.Extension);
        OnnxAdapterFile.Write(wide, new Dictionary<string, (int[], float[])> { [name] = ([shape[0], shape[1] + 1], new float[shape[0] * (shape[1] + 1)]) });
        e = Assert.Throws<OnnxRuntimeCheckerException>(() => OnnxRuntimeChecker.Run(basePath, feeds, wide));
        Assert.Contains(name, e.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// The GroupQueryAttention layout's logits equal our forward pass's: a 6-token prefill into an empty max-length
    /// buffer (past the sliding windows of 3), then two decode steps on the shared buffer. The fixtures with head size
    /// 16 cover q/k norms (Qwen3), soft-capping and sliding windows (Gemma 2) and Gemma 3's local RoPE base.
    /// </summary>
    [Theory]
    [InlineData("qwen3")]
    [InlineData("gemma2")]
    [InlineData("gemma3")]
    public void GroupQueryAttentionLogitsEqualOurForwardInPrefillAndDecode(string name)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        var config = model.Config;
        string path = Path.Combine(root, name + "-gqa.onnx");
        LlamaOnnxExporter.Export(model, path, new OnnxExportOptions { KvCache = true, GroupQueryAttention = true, MaxPositions = 32 });
        const int maxLength = 16;
        int[] tokens = [1, 5, 9, 30, 7, 11, 42, 3];
        int v = config.VocabSize, kv = config.NumKeyValueHeads, hs = config.HeadDim;
        var past = Enumerable.Range(0, config.NumHiddenLayers)
            .SelectMany(i => new[] { $"past_key_values.{i}.key", $"past_key_values.{i}.value" })
            .ToDictionary(n => n, _ => OnnxInput.Float32(new float[kv * maxLength * hs], 1, kv, maxLength, hs));
        int done = 0;
        foreach (int step in new[] { 6, 1, 1 })
        {
            int[] input = tokens[done..(done + step)];
            var inputs = new Dictionary<string, OnnxInput>(past)
            {
                ["input_ids"] = OnnxInput.Int64(input.Select(i => (long)i).ToArray(), 1, step),
                ["position_ids"] = OnnxInput.Int64(Enumerable.Range(done, step).Select(i => (long)i).ToArray(), 1, step),
                ["attention_mask"] = OnnxInput.Int64(Enumerable.Repeat(1L, done + step).ToArray(), 1, done + step),
            };
            var outputs = OnnxRuntimeChecker.Run(path, inputs).Tensors;
            done += step;
            var ours = LoraAdapterTests.Logits(model, CausalLmBatch.FromRows([tokens[..done]]));
            ReferenceModelTests.AssertClose(ours[((done - step) * v)..], outputs["logits"].Floats!, F32Tolerance, $"{name} GroupQueryAttention logits after {done} tokens");
            foreach (string key in past.Keys.ToList())
            {
                var present = outputs[key.Replace("past_key_values", "present", StringComparison.Ordinal)];
                Assert.Equal([1, kv, maxLength, hs], present.Dims);
                past[key] = OnnxInput.Float32(present.Floats!, present.Dims);
            }
        }

        var e = Assert.Throws<ArgumentException>(() => LlamaOnnxExporter.Export(model, Path.Combine(root, "x.onnx"), new OnnxExportOptions { GroupQueryAttention = true }));
        Assert.Contains("KvCache", e.Message, StringComparison.Ordinal);
        using var narrow = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        e = Assert.Throws<ArgumentException>(() => LlamaOnnxExporter.Export(narrow, Path.Combine(root, "y.onnx"), new OnnxExportOptions { KvCache = true, GroupQueryAttention = true }));
        Assert.Contains("head_dim is 8", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("llama_gqa", 32)]
    [InlineData("qwen2_bias", 32)]
    [InlineData("llama_tied_headdim", 64)]
    [InlineData("qwen3", 32)]
    [InlineData("phi3", 32)]
    [InlineData("gemma2", 32)]
    public void Int4WeightsRunInOnnxRuntimeAsTheDequantizedModel(string name, int blockSize)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        string path = Path.Combine(root, name + "-int4.onnx");
        LlamaOnnxExporter.Export(model, path, new OnnxExportOptions { Int4 = true, Int4BlockSize = blockSize });

        // Our model with each decoder Linear replaced by its 4-bit blocks dequantized: the exported function.
        double worst = 0;
        foreach (var linear in model.Layers.SelectMany(l => l.Projections()))
        {
            var w = linear.Weight.Value.AsF32();
            var (_, _, dequantized) = Int4Blocks.Quantize(w.ToArray(), linear.OutFeatures, linear.InFeatures, blockSize);
            for (int i = 0; i < w.Length; i++)
            {
                worst = Math.Max(worst, Math.Abs(w[i] - dequantized[i]));
            }

            dequantized.CopyTo(w);
        }

        Assert.True(worst > 1e-3, "4-bit rounding must change the weights, or the comparison proves nothing");
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(name), "expected.safetensors"));
        var batch = ReferenceModelTests.BatchOf(expected);
        var logits = Run(path, batch.InputIds, Enumerable.Repeat(1L, batch.InputIds.Length).ToArray(), batch.B, batch.T).Tensors["logits"].Floats!;
        ReferenceModelTests.AssertClose(LoraAdapterTests.Logits(model, batch), logits, F32Tolerance, $"{name} int4 logits");
    }

    [Fact]
    public void ExportToAnUnwritablePathFailsAndLeavesNothing()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        string blocker = Path.Combine(root, "file");
        File.WriteAllText(blocker, "x");
        var e = Assert.ThrowsAny<IOException>(() => LlamaOnnxExporter.Export(model, Path.Combine(blocker, "m.onnx")));
        Assert.Contains("m.onnx", e.Message, StringComparison.Ordinal);
        Assert.Equal(["file"], Directory.GetFileSystemEntries(root).Select(Path.GetFileName));
    }

    private static OnnxOutputs Run(string path, int[] ids, long[] mask, int b, int t) =>
        OnnxRuntimeChecker.Run(path, new Dictionary<string, OnnxInput>
        {
            ["input_ids"] = OnnxInput.Int64(ids.Select(i => (long)i).ToArray(), b, t),
            ["attention_mask"] = OnnxInput.Int64(mask, b, t),
        });
}
