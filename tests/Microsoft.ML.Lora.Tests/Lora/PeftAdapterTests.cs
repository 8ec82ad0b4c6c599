using System.Text.Json;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>
/// PEFT adapter folders: the reference adapters of tests/reference/make_peft_fixture.py load and give the
/// float64 reference's logits, loss and eval loss; a saved adapter loads back bit for bit; files follow PEFT.
/// </summary>
public sealed class PeftAdapterTests : IDisposable
{
    // F32 engine vs the float64 reference, as in ReferenceModelTests: the adapter adds one rank-r
    // product per adapted layer, well inside the ~1e-6 relative error seen there.
    private const double F32Tolerance = 1e-4;

    private readonly PeftTestFiles files = new();

    public static TheoryData<string, string> ReferenceCases() => new()
    {
        { "peft_llama_gqa", "llama_gqa" },
        { "peft_llama_gqa_rslora", "llama_gqa" },
        { "peft_qwen2_bias", "qwen2_bias" },
        { "peft_qwen3", "qwen3" },
        { "peft_phi3", "phi3" },
        { "peft_gemma2", "gemma2" },
        { "peft_gemma3", "gemma3" },
    };

    public void Dispose() => files.Dispose();

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void ReferenceAdapterGivesTheReferenceLogitsAndLoss(string adapterCase, string baseCase)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(PeftTestFiles.Reference(adapterCase), "expected.safetensors"));
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(baseCase));
        var batch = ReferenceModelTests.BatchOf(expected);
        var refLogits = expected.ReadFloats("logits");
        double refLoss = expected.ReadFloats("loss")[0];

        // The adapter must matter: the base model is far outside the tolerance of the adapted reference.
        var baseLogits = LoraAdapterTests.Logits(model, batch);
        double scale = refLogits.Max(x => Math.Abs((double)x));
        Assert.True(refLogits.Zip(baseLogits, (r, b) => Math.Abs(r - b)).Max() > 100 * F32Tolerance * scale, "the reference adapter does not change the logits");

        model.LoadAdapter(PeftTestFiles.Reference(adapterCase));
        ReferenceModelTests.AssertClose(refLogits, LoraAdapterTests.Logits(model, batch), F32Tolerance, $"{adapterCase} logits");
        Assert.Equal(refLoss, model.Forward(batch).Mean, refLoss * F32Tolerance);
    }

    [Theory]
    [MemberData(nameof(ReferenceCases))]
    public void ReferenceAdapterGivesTheReferenceEvalLoss(string adapterCase, string baseCase)
    {
        using var expectedJson = JsonDocument.Parse(File.ReadAllText(Path.Combine(PeftTestFiles.Reference(adapterCase), "eval_expected.json")));
        double refLoss = expectedJson.RootElement.GetProperty("loss").GetDouble();
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(baseCase));
        model.LoadAdapter(PeftTestFiles.Reference(adapterCase));
        var rows = TokenRowReader.ReadAll(Path.Combine(FixturePaths.Case(baseCase), "eval.jsonl"), model.Config.VocabSize);
        var result = Evaluator.Evaluate(model, rows, batchSize: 2);
        Assert.Equal(expectedJson.RootElement.GetProperty("tokens").GetInt64(), result.Tokens);
        Assert.Equal(refLoss, result.Mean, refLoss * F32Tolerance);
    }

    [Fact]
    public void ReferenceAdapterIsAttachedAsPeftDescribesIt()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = model.LoadAdapter(PeftTestFiles.Reference("peft_llama_gqa"), "mine").ToDictionary(a => a.ModuleName);

        // target_modules [down_proj, q_proj, v_proj] in 2 layers; rank_pattern layers.1.q_proj → 2; alpha_pattern down_proj → 16.
        Assert.Equal(6, adapters.Count);
        Assert.Equal(2, adapters["model.layers.1.self_attn.q_proj"].Rank);
        Assert.Equal(8f / 2, adapters["model.layers.1.self_attn.q_proj"].Scale);
        Assert.Equal(4, adapters["model.layers.0.self_attn.q_proj"].Rank);
        Assert.Equal(8f / 4, adapters["model.layers.0.self_attn.q_proj"].Scale);
        Assert.Equal(16f / 4, adapters["model.layers.1.mlp.down_proj"].Scale);
        Assert.Equal(0.05f, adapters["model.layers.0.self_attn.v_proj"].Dropout);
        Assert.Equal("model.layers.0.self_attn.q_proj.lora_A.mine.weight", adapters["model.layers.0.self_attn.q_proj"].A.Name);
        Assert.All(model.Linears(), l => Assert.Equal(adapters.ContainsKey(l.Name) ? "mine" : null, l.ActiveAdapter));

        // Inference by default: nothing trains, no gradient memory.
        Assert.Empty(model.TrainableParameters());

        using var file = SafeTensorsFile.Open(Path.Combine(PeftTestFiles.Reference("peft_llama_gqa"), PeftAdapter.WeightsFileName));
        Assert.Equal(file.ReadFloats("base_model.model.model.layers.1.mlp.down_proj.lora_B.weight"), adapters["model.layers.1.mlp.down_proj"].B.Value.ToFloatArray());

        using var rslora = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var r = rslora.LoadAdapter(PeftTestFiles.Reference("peft_llama_gqa_rslora"), isTrainable: true).ToDictionary(a => a.ModuleName);
        Assert.Equal(["model.layers.1.mlp.up_proj", "model.layers.1.self_attn.k_proj", "model.layers.1.self_attn.o_proj"], r.Keys.Order(StringComparer.Ordinal));
        Assert.Equal((float)(8 / Math.Sqrt(8)), r["model.layers.1.mlp.up_proj"].Scale);
        Assert.Equal(8f / 2, r["model.layers.1.self_attn.k_proj"].Scale);
        Assert.Equal(
            r.Values.SelectMany(a => a.Parameters()).Select(p => p.Name).Append("lm_head.weight").Order(StringComparer.Ordinal),
            rslora.TrainableParameters().Select(p => p.Name).Order(StringComparer.Ordinal));
    }

    [Fact]
    public void SavedAdapterLoadsIntoAFreshModelBitForBit()
    {
        var batch = Batch("llama_gqa");
        using var trained = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var options = new LoraOptions
        {
            Rank = 4,
            Alpha = 8,
            UseRsLora = true,
            TargetModules = ["q_proj", "v_proj", "down_proj", "up_proj"],
            RankPattern = new Dictionary<string, int> { ["up_proj"] = 3 },
            AlphaPattern = new Dictionary<string, double> { ["model.layers.1.self_attn.v_proj"] = 5 },
            ModulesToSave = ["lm_head"],
        };
        Perturb(trained, trained.AddAdapter(options, seed: 5), seed: 6);
        Perturb(trained.LmHead.Weight.Value.AsF32(), 7, 0.05);
        var logits = LoraAdapterTests.Logits(trained, batch);

        string dir = files.Path("saved");
        trained.SaveAdapter(dir, baseModelNameOrPath: "tests/fixtures/llama_gqa", options: options);
        using var fresh = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        Assert.NotEqual(logits, LoraAdapterTests.Logits(fresh, batch));
        fresh.LoadAdapter(dir);
        Assert.Equal(logits, LoraAdapterTests.Logits(fresh, batch));
        Assert.Equal(trained.LmHead.Weight.Value.ToFloatArray(), fresh.LmHead.Weight.Value.ToFloatArray());
    }

    [Fact]
    public void AdaptersSavedWithoutOptionsAreDescribedByTheirRanksAndScales()
    {
        var batch = Batch("qwen2_bias");
        using var trained = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        var options = new LoraOptions
        {
            Rank = 4,
            Alpha = 7,
            Dropout = 0.1,
            TargetModules = ["q_proj", "k_proj", "o_proj", "gate_proj"],
            LayersToTransform = [1],
            RankPattern = new Dictionary<string, int> { ["k_proj"] = 2 },
            AlphaPattern = new Dictionary<string, double> { ["gate_proj"] = 12 },
            Bias = LoraBias.LoraOnly,
        };
        var adapters = trained.AddAdapter(options, seed: 8);
        Perturb(trained, adapters, seed: 9);
        Perturb(trained.Layers[1].SelfAttn.QProj!.Bias!.Value.AsF32(), 10, 0.1);
        var logits = LoraAdapterTests.Logits(trained, batch);

        string dir = files.Path("inferred");
        trained.SaveAdapter(dir);
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, PeftAdapterConfig.FileName)));
        var root = config.RootElement;
        Assert.Equal(4, root.GetProperty("r").GetInt32());
        Assert.Equal(7, root.GetProperty("lora_alpha").GetDouble());
        Assert.Equal(0.1, root.GetProperty("lora_dropout").GetDouble());
        Assert.Equal("{\"k_proj\":2}", root.GetProperty("rank_pattern").GetRawText().Replace(" ", string.Empty, StringComparison.Ordinal).Replace("\n", string.Empty, StringComparison.Ordinal));
        Assert.Equal("{\"gate_proj\":12}", root.GetProperty("alpha_pattern").GetRawText().Replace(" ", string.Empty, StringComparison.Ordinal).Replace("\n", string.Empty, StringComparison.Ordinal));
        Assert.Equal(["gate_proj", "k_proj", "o_proj", "q_proj"], root.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([1], root.GetProperty("layers_to_transform").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal("lora_only", root.GetProperty("bias").GetString());
        Assert.False(root.GetProperty("use_rslora").GetBoolean());

        using var fresh = LlamaForCausalLM.Load(FixturePaths.Case("qwen2_bias"));
        fresh.LoadAdapter(dir);
        Assert.Equal(logits, LoraAdapterTests.Logits(fresh, batch));
        Assert.Equal(trained.Layers[1].SelfAttn.QProj!.Bias!.Value.ToFloatArray(), fresh.Layers[1].SelfAttn.QProj!.Bias!.Value.ToFloatArray());
    }

    [Fact]
    public void SavedFilesFollowPeftNamesShapesAndConfigFields()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.AddAdapter(new LoraOptions { Rank = 4, Alpha = 8, Init = LoraInit.Gaussian }, "other", seed: 1);
        var options = new LoraOptions { Rank = 4, Alpha = 8 };
        model.AddAdapter(options, seed: 2);
        string dir = files.Path("layout");
        model.SaveAdapter(dir, baseModelNameOrPath: "meta-llama/Llama-3.2-1B", options: options);

        Assert.Equal([PeftAdapterConfig.FileName, PeftAdapter.WeightsFileName], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(["layout"], Directory.GetFileSystemEntries(files.Root).Select(Path.GetFileName));

        using var file = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName));
        Assert.Equal("pt", file.Metadata["format"]);
        var c = model.Config;
        int hs = c.HeadDim;
        var shapes = new Dictionary<string, (int Out, int In)>
        {
            ["self_attn.q_proj"] = (c.NumAttentionHeads * hs, c.HiddenSize),
            ["self_attn.k_proj"] = (c.NumKeyValueHeads * hs, c.HiddenSize),
            ["self_attn.v_proj"] = (c.NumKeyValueHeads * hs, c.HiddenSize),
            ["self_attn.o_proj"] = (c.HiddenSize, c.NumAttentionHeads * hs),
            ["mlp.gate_proj"] = (c.IntermediateSize, c.HiddenSize),
            ["mlp.up_proj"] = (c.IntermediateSize, c.HiddenSize),
            ["mlp.down_proj"] = (c.HiddenSize, c.IntermediateSize),
        };
        var expectedKeys = new List<string>();
        for (int i = 0; i < c.NumHiddenLayers; i++)
        {
            foreach (var (module, (o, n)) in shapes)
            {
                string a = $"base_model.model.model.layers.{i}.{module}.lora_A.weight", b = $"base_model.model.model.layers.{i}.{module}.lora_B.weight";
                Assert.Equal([4, n], file.Info(a).Shape);
                Assert.Equal([o, 4], file.Info(b).Shape);
                Assert.Equal("F32", file.Info(a).DType);
                Assert.Equal("F32", file.Info(b).DType);
                expectedKeys.Add(a);
                expectedKeys.Add(b);
            }
        }

        Assert.Equal(expectedKeys.Order(StringComparer.Ordinal), file.Tensors.Keys.Order(StringComparer.Ordinal));
        Assert.Equal(model.Adapters("default").First(a => a.ModuleName == "model.layers.0.self_attn.q_proj").A.Value.ToFloatArray(), file.ReadFloats("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight"));

        string json = File.ReadAllText(Path.Combine(dir, PeftAdapterConfig.FileName));
        Assert.StartsWith("{\n  \"alpha_pattern\": {},\n  \"auto_mapping\": null,\n", json, StringComparison.Ordinal);
        Assert.EndsWith("\n}", json, StringComparison.Ordinal);
        using var config = JsonDocument.Parse(json);
        var root = config.RootElement;
        var names = root.EnumerateObject().Select(p => p.Name).ToList();
        Assert.Equal(names.Order(StringComparer.Ordinal), names);
        Assert.Equal(
            ["alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode", "init_lora_weights", "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config", "lora_alpha", "lora_dropout", "megatron_config", "megatron_core", "modules_to_save", "peft_type", "r", "rank_pattern", "revision", "target_modules", "task_type", "use_dora", "use_rslora"],
            names);
        Assert.Equal("LORA", root.GetProperty("peft_type").GetString());
        Assert.Equal("CAUSAL_LM", root.GetProperty("task_type").GetString());
        Assert.Equal("meta-llama/Llama-3.2-1B", root.GetProperty("base_model_name_or_path").GetString());
        Assert.Equal("4", root.GetProperty("r").GetRawText());
        Assert.Equal("8", root.GetProperty("lora_alpha").GetRawText());
        Assert.Equal("0", root.GetProperty("lora_dropout").GetRawText());
        Assert.Equal(["down_proj", "gate_proj", "k_proj", "o_proj", "q_proj", "up_proj", "v_proj"], root.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal("none", root.GetProperty("bias").GetString());
        Assert.Equal(JsonValueKind.True, root.GetProperty("init_lora_weights").ValueKind);
        Assert.Equal(JsonValueKind.False, root.GetProperty("fan_in_fan_out").ValueKind);
        Assert.Equal(JsonValueKind.False, root.GetProperty("use_dora").ValueKind);
        Assert.Equal(JsonValueKind.False, root.GetProperty("use_rslora").ValueKind);
        Assert.Equal(JsonValueKind.True, root.GetProperty("inference_mode").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("layers_to_transform").ValueKind);
        Assert.Equal(JsonValueKind.Null, root.GetProperty("modules_to_save").ValueKind);
    }

    [Theory]
    [InlineData("peft_llama_gqa", "llama_gqa")]
    [InlineData("peft_qwen2_bias", "qwen2_bias")]
    [InlineData("peft_qwen3", "qwen3")]
    [InlineData("peft_phi3", "phi3")]
    [InlineData("peft_gemma2", "gemma2")]
    [InlineData("peft_gemma3", "gemma3")]
    public void ReferenceAdapterSavesBackToTheSameConfigAndTensors(string adapterCase, string baseCase)
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(baseCase));
        model.LoadAdapter(PeftTestFiles.Reference(adapterCase));
        string dir = files.Path("again");
        model.SaveAdapter(dir, baseModelNameOrPath: $"tests/fixtures/{baseCase}");

        using var original = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(PeftTestFiles.Reference(adapterCase), PeftAdapterConfig.FileName)));
        using var written = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, PeftAdapterConfig.FileName)));
        Assert.Equal(Canonical(original.RootElement), Canonical(written.RootElement));

        using var a = SafeTensorsFile.Open(Path.Combine(PeftTestFiles.Reference(adapterCase), PeftAdapter.WeightsFileName));
        using var b = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName));
        Assert.Equal(a.Tensors.Keys.Order(StringComparer.Ordinal), b.Tensors.Keys.Order(StringComparer.Ordinal));
        Assert.All(a.Tensors.Keys, k => Assert.True(a.GetBytes(k).SequenceEqual(b.GetBytes(k)), k));
    }

    [Fact]
    public void RegexTargetsAreSavedAsTheModulesTheySelected()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.LoadAdapter(PeftTestFiles.Reference("peft_llama_gqa_rslora"));
        string dir = files.Path("regex");
        model.SaveAdapter(dir);
        using var config = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, PeftAdapterConfig.FileName)));
        Assert.Equal(["k_proj", "o_proj", "up_proj"], config.RootElement.GetProperty("target_modules").EnumerateArray().Select(e => e.GetString()));
        Assert.Equal([1], config.RootElement.GetProperty("layers_to_transform").EnumerateArray().Select(e => e.GetInt32()));
        Assert.Equal(["lm_head"], config.RootElement.GetProperty("modules_to_save").EnumerateArray().Select(e => e.GetString()));
        Assert.True(config.RootElement.GetProperty("use_rslora").GetBoolean());
        Assert.Equal("gaussian", config.RootElement.GetProperty("init_lora_weights").GetString());

        var batch = Batch("llama_gqa");
        using var fresh = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        fresh.LoadAdapter(dir);
        Assert.Equal(LoraAdapterTests.Logits(model, batch), LoraAdapterTests.Logits(fresh, batch));
    }

    [Fact]
    public void NamedKeysAndHalfPrecisionTensorsLoadAsF32()
    {
        // Some tools keep the adapter name in the key (…lora_A.default.weight) and store BF16.
        string dir = files.Rewrite(
            "peft_llama_gqa",
            "named-bf16",
            rename: k => k.Replace(".weight", ".default.weight", StringComparison.Ordinal),
            entry: (k, values, shape) => SafeTensorEntry.FromBytes(k, "BF16", shape, values.SelectMany(v => BitConverter.GetBytes(Bf16Bits(v))).ToArray()));
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        var adapters = model.LoadAdapter(dir).ToDictionary(a => a.ModuleName);
        using var file = SafeTensorsFile.Open(Path.Combine(PeftTestFiles.Reference("peft_llama_gqa"), PeftAdapter.WeightsFileName));
        var reference = file.ReadFloats("base_model.model.model.layers.0.mlp.down_proj.lora_A.weight");
        var loaded = adapters["model.layers.0.mlp.down_proj"].A.Value.ToFloatArray();
        Assert.Equal(reference.Select(v => BitConverter.UInt32BitsToSingle((uint)Bf16Bits(v) << 16)), loaded);
        Assert.NotEqual(reference, loaded);
        Assert.Equal(DType.F32, adapters["model.layers.0.mlp.down_proj"].B.Value.DType);
    }

    [Fact]
    public void SavingIntoAnExistingFolderKeepsOtherFilesAndReplacesThePair()
    {
        string dir = files.Path("existing");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "README.md"), "keep me");
        File.WriteAllText(Path.Combine(dir, PeftAdapterConfig.FileName), "{ stale");
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.AddAdapter(new LoraOptions { Rank = 2, TargetModules = ["q_proj"] });
        model.SaveAdapter(dir);
        Assert.Equal(["README.md", PeftAdapterConfig.FileName, PeftAdapter.WeightsFileName], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal("keep me", File.ReadAllText(Path.Combine(dir, "README.md")));
        Assert.Equal(2, PeftAdapterConfig.Read(Path.Combine(dir, PeftAdapterConfig.FileName)).Rank);
    }

    internal static CausalLmBatch Batch(string baseCase)
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case(baseCase), "expected.safetensors"));
        return ReferenceModelTests.BatchOf(expected);
    }

    private static void Perturb(LlamaForCausalLM model, IReadOnlyList<LoraAdapter> adapters, int seed)
    {
        var random = new Random(seed);
        foreach (var a in adapters)
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.2);
        }

        Assert.NotEmpty(model.Adapters());
    }

    private static void Perturb(Span<float> values, int seed, double std)
    {
        var noise = new float[values.Length];
        LoraInitializerAccess.Fill(noise, new Random(seed), std);
        System.Numerics.Tensors.TensorPrimitives.Add(values, noise, values);
    }

    private static ushort Bf16Bits(float v) => (ushort)((BitConverter.SingleToUInt32Bits(v) + 0x7FFF + ((BitConverter.SingleToUInt32Bits(v) >> 16) & 1)) >> 16);

    // Sorted keys, numbers as doubles (Python writes 0.0 where .NET writes 0).
    private static string Canonical(JsonElement e) => e.ValueKind switch
    {
        JsonValueKind.Object => "{" + string.Join(",", e.EnumerateObject().OrderBy(p => p.Name, StringComparer.Ordinal).Select(p => $"\"{p.Name}\":{Canonical(p.Value)}")) + "}",
        JsonValueKind.Array => "[" + string.Join(",", e.EnumerateArray().Select(Canonical)) + "]",
        JsonValueKind.Number => e.GetDouble().ToString("R", System.Globalization.CultureInfo.InvariantCulture),
        _ => e.GetRawText(),
    };
}
