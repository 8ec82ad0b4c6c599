using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Formats;

public class LlamaConfigTests
{
    private const string Source = "/models/test/config.json";

    /// <summary>TinyLlama's config with <paramref name="edit"/> applied to its JSON object.</summary>
    private static string Edited(Action<JsonObject> edit, string baseJson = RealWorldConfigs.TinyLlama)
    {
        var node = JsonNode.Parse(baseJson)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    [Fact]
    public void TinyLlama()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.TinyLlama, Source);
        Assert.Equal(("llama", "LlamaForCausalLM"), (c.ModelType, c.Architecture));
        Assert.Equal((32000, 2048, 5632, 22), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((32, 4, 64), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.Equal(1e-5, c.RmsNormEps);
        Assert.Equal(10000, c.RopeTheta);
        Assert.Null(c.RopeScaling);
        Assert.Equal(2048, c.MaxPositionEmbeddings);
        Assert.False(c.TieWordEmbeddings);
        Assert.False(c.QkvBias || c.OBias || c.MlpBias);
        Assert.Equal("silu", c.HiddenAct);
        Assert.Null(c.SlidingWindow);
        Assert.Equal("bfloat16", c.TorchDtype);
    }

    [Fact]
    public void SmolLM135M()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.SmolLM135M, Source);
        Assert.Equal((49152, 576, 1536, 30), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((9, 3, 64), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.True(c.TieWordEmbeddings);
        Assert.Equal("float32", c.TorchDtype);
    }

    [Fact]
    public void Qwen2HasQkvBiasButNoOBias()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Qwen2_05B, Source);
        Assert.Equal(("qwen2", "Qwen2ForCausalLM"), (c.ModelType, c.Architecture));
        Assert.Equal((151936, 896, 4864, 24), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((14, 2, 64), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.Equal(1_000_000, c.RopeTheta);
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.True(c.TieWordEmbeddings);
        Assert.True(c.QkvBias);
        Assert.False(c.OBias);
        Assert.False(c.MlpBias);
        Assert.Null(c.SlidingWindow); // use_sliding_window is false
    }

    [Fact]
    public void Qwen3NormalizesQueryAndKeyHeadsWithAnExplicitHeadDim()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Qwen3_06B, Source);
        Assert.Equal(("qwen3", "Qwen3ForCausalLM"), (c.ModelType, c.Architecture));
        Assert.Equal((151936, 1024, 3072, 28), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((16, 8, 128), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.True(c.QkNorm);
        Assert.True(c.TieWordEmbeddings);
        Assert.False(c.QkvBias || c.OBias || c.MlpBias);
        Assert.Null(c.SlidingWindow);
        Assert.False(LlamaConfig.Parse(RealWorldConfigs.Qwen2_05B, Source).QkNorm);

        // attention_bias adds q/k/v and o_proj biases, as in llama; the written config round-trips.
        var biased = LlamaConfig.Parse(Edited(o => o["attention_bias"] = true, RealWorldConfigs.Qwen3_06B), Source);
        Assert.True(biased.QkvBias && biased.OBias);
        Assert.Equal(biased, LlamaConfig.Parse(biased.ToJson(), Source));
        Assert.Equal(c, LlamaConfig.Parse(c.ToJson(), Source));
        Assert.Equal("Qwen3ForSequenceClassification", c.ForSequenceClassification(3).Architecture);
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(64, 32, 48, 1, 4, modelType: "qwen3", mlpBias: true));
    }

    [Fact]
    public void Phi3FusesItsProjectionsAndSlidesEveryLayer()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Phi3Mini4k, Source);
        Assert.Equal(("phi3", "Phi3ForCausalLM"), (c.ModelType, c.Architecture));
        Assert.Equal((32064, 3072, 8192, 32), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((32, 32, 96), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.True(c.FusedProjections);
        Assert.False(c.QkvBias || c.OBias || c.MlpBias || c.QkNorm || c.TieWordEmbeddings);
        Assert.Equal([2047, 2047], new[] { 0, 31 }.Select(c.SlidingWindowOfLayer));
        Assert.Equal(c, LlamaConfig.Parse(c.ToJson(), Source));
        Assert.False(LlamaConfig.Parse(RealWorldConfigs.Mistral7B, Source).FusedProjections);

        // Phi-4-mini is a phi3 with partial rotary embeddings: refused by name, not loaded wrong.
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["partial_rotary_factor"] = 0.75, RealWorldConfigs.Phi3Mini4k), Source));
        Assert.Contains("partial_rotary_factor", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["rope_scaling"] = new System.Text.Json.Nodes.JsonObject { ["type"] = "longrope" }, RealWorldConfigs.Phi3Mini4k), Source));
        Assert.Contains("longrope", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gemma2SoftCapsNormalizesEachBlockAndSlidesOnEvenLayers()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Gemma2_2B, Source);
        Assert.Equal(("gemma2", "Gemma2ForCausalLM", "gelu_pytorch_tanh"), (c.ModelType, c.Architecture, c.HiddenAct));
        Assert.True(c.Gemma && c.TieWordEmbeddings && !c.QkNorm);
        Assert.Equal((8, 4, 256), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.Equal((50.0, 30.0), (c.AttnLogitSoftcapping, c.FinalLogitSoftcapping));
        Assert.Equal(1f / 16, c.AttentionScale);
        Assert.Equal((float)Math.Sqrt(2304), c.EmbeddingScale);
        Assert.Equal(1f, c.NormWeightOffset);
        Assert.Equal([4096, 0, 4096, 0], Enumerable.Range(0, 4).Select(c.SlidingWindowOfLayer));
        Assert.Equal(c, LlamaConfig.Parse(c.ToJson(), Source));
        Assert.Equal(c, LlamaConfig.Parse(c.ToJson(), Source).With(numHiddenLayers: 26));

        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["hidden_activation"] = "gelu", RealWorldConfigs.Gemma2_2B), Source));
        Assert.Contains("hidden_activation 'gelu'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Gemma3TextHasLocalRopeOnItsSlidingLayersAndTheVisionModelIsRefusedByName()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Gemma3_1B, Source);
        Assert.Equal(("gemma3_text", "Gemma3ForCausalLM"), (c.ModelType, c.Architecture));
        Assert.True(c.Gemma && c.QkNorm && c.TieWordEmbeddings);
        Assert.Null(c.AttnLogitSoftcapping);
        Assert.Null(c.FinalLogitSoftcapping);
        int[] windows = [.. Enumerable.Range(0, 12).Select(c.SlidingWindowOfLayer)];
        Assert.Equal([512, 512, 512, 512, 512, 0, 512, 512, 512, 512, 512, 0], windows);
        Assert.Equal((10000.0, (RopeScaling?)null), c.RopeOfLayer(0));
        Assert.Equal((1_000_000.0, c.RopeScaling), c.RopeOfLayer(5));
        Assert.Equal(c, LlamaConfig.Parse(c.ToJson(), Source));

        // transformers ≥ 4.53 writes layer_types: accepted when it says the same, refused by name otherwise.
        var types = new System.Text.Json.Nodes.JsonArray([.. windows.Concat(Enumerable.Repeat(512, 14)).Select((w, i) => (System.Text.Json.Nodes.JsonNode)((i + 1) % 6 == 0 ? "full_attention" : "sliding_attention"))]);
        Assert.Equal(c, LlamaConfig.Parse(Edited(o => o["layer_types"] = types.DeepClone(), RealWorldConfigs.Gemma3_1B), Source));
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["layer_types"] = new System.Text.Json.Nodes.JsonArray("full_attention"), RealWorldConfigs.Gemma3_1B), Source));
        Assert.Contains("layer_types", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => { o["model_type"] = "gemma3"; o["vision_config"] = new System.Text.Json.Nodes.JsonObject(); }, RealWorldConfigs.Gemma3_1B), Source));
        Assert.Contains("vision_config", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void SlidingWindowsApplyToTheLayersTransformersSlides()
    {
        var mistral = LlamaConfig.Parse(RealWorldConfigs.Mistral7B, Source);
        Assert.All(Enumerable.Range(0, mistral.NumHiddenLayers), l => Assert.Equal(mistral.SlidingWindow ?? 0, mistral.SlidingWindowOfLayer(l)));

        var qwen = LlamaConfig.Load(Path.Combine(FixturePaths.Case("qwen2_window"), "config.json"));
        Assert.Equal((3, 1), (qwen.SlidingWindow, qwen.MaxWindowLayers));
        Assert.Equal([0, 3], Enumerable.Range(0, qwen.NumHiddenLayers).Select(qwen.SlidingWindowOfLayer));
        Assert.Equal(qwen, LlamaConfig.Parse(qwen.ToJson(), Source));
        Assert.Equal(1, qwen.With(numHiddenLayers: 4).MaxWindowLayers);

        // Without use_sliding_window a qwen config attends fully, whatever sliding_window says.
        var full = LlamaConfig.Parse(RealWorldConfigs.Qwen2_05B, Source);
        Assert.Equal(0, full.SlidingWindowOfLayer(full.NumHiddenLayers - 1));
        var defaulted = LlamaConfig.Parse(Edited(o => { o["use_sliding_window"] = true; o["sliding_window"] = 4096; }, RealWorldConfigs.Qwen2_05B), Source);
        Assert.Equal((0, 4096), (defaulted.SlidingWindowOfLayer(23), defaulted.SlidingWindowOfLayer(28)));
    }

    [Fact]
    public void Mistral7B()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Mistral7B, Source);
        Assert.Equal(("mistral", "MistralForCausalLM"), (c.ModelType, c.Architecture));
        Assert.Equal((32000, 4096, 14336, 32), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((32, 8, 128), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.Equal(4096, c.SlidingWindow);
        Assert.Equal(32768, c.MaxPositionEmbeddings);
        Assert.False(c.QkvBias || c.OBias || c.MlpBias);
    }

    [Fact]
    public void Llama32WithLlama3RopeScaling()
    {
        var c = LlamaConfig.Parse(RealWorldConfigs.Llama32_1B, Source);
        Assert.Equal((128256, 2048, 8192, 16), (c.VocabSize, c.HiddenSize, c.IntermediateSize, c.NumHiddenLayers));
        Assert.Equal((32, 8, 64), (c.NumAttentionHeads, c.NumKeyValueHeads, c.HeadDim));
        Assert.Equal(500000, c.RopeTheta);
        Assert.Equal(new RopeScaling("llama3", 32, 1, 4, 8192), c.RopeScaling);
        Assert.Equal(131072, c.MaxPositionEmbeddings);
        Assert.True(c.TieWordEmbeddings);
    }

    [Fact]
    public void Defaults()
    {
        string json = """
            {"model_type": "llama", "vocab_size": 100, "hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "num_attention_heads": 4, "max_position_embeddings": 256}
            """;
        var c = LlamaConfig.Parse(json, Source);
        Assert.Equal("LlamaForCausalLM", c.Architecture);
        Assert.Equal(4, c.NumKeyValueHeads);
        Assert.Equal(16, c.HeadDim);
        Assert.Equal(1e-6, c.RmsNormEps);
        Assert.Equal(10000, c.RopeTheta);
        Assert.Null(c.RopeScaling);
        Assert.False(c.TieWordEmbeddings);
        Assert.Null(c.TorchDtype);
    }

    [Fact]
    public void ExplicitHeadDimWinsAndNullMeansDerived()
    {
        var c = LlamaConfig.Parse(Edited(o => { o["head_dim"] = 128; o["hidden_size"] = 2050; }), Source);
        Assert.Equal(128, c.HeadDim);
        var d = LlamaConfig.Parse(Edited(o => o["head_dim"] = null), Source);
        Assert.Equal(64, d.HeadDim);
    }

    [Fact]
    public void LlamaAttentionBiasAddsQkvAndOBias()
    {
        var c = LlamaConfig.Parse(Edited(o => { o["attention_bias"] = true; o["mlp_bias"] = true; }), Source);
        Assert.True(c.QkvBias);
        Assert.True(c.OBias);
        Assert.True(c.MlpBias);
    }

    [Theory]
    [InlineData("rope_type")]
    [InlineData("type")]
    public void LinearRopeScalingFromEitherKey(string key)
    {
        var c = LlamaConfig.Parse(Edited(o => o["rope_scaling"] = new JsonObject { [key] = "linear", ["factor"] = 2.0 }), Source);
        Assert.Equal(new RopeScaling("linear", 2), c.RopeScaling);
    }

    [Fact]
    public void DefaultRopeTypeMeansNone()
    {
        var c = LlamaConfig.Parse(Edited(o => o["rope_scaling"] = new JsonObject { ["rope_type"] = "default" }), Source);
        Assert.Null(c.RopeScaling);
    }

    [Fact]
    public void TransformersV5RopeParameters()
    {
        var c = LlamaConfig.Parse(
            Edited(o =>
            {
                o.Remove("rope_theta");
                o.Remove("rope_scaling");
                o["rope_parameters"] = new JsonObject { ["rope_type"] = "linear", ["factor"] = 4.0, ["rope_theta"] = 250000.0 };
            }),
            Source);
        Assert.Equal(250000, c.RopeTheta);
        Assert.Equal(new RopeScaling("linear", 4), c.RopeScaling);
    }

    [Theory]
    [InlineData("dynamic")]
    [InlineData("yarn")]
    [InlineData("longrope")]
    public void UnsupportedRopeScalingType(string type)
    {
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["rope_scaling"] = new JsonObject { ["type"] = type, ["factor"] = 2.0 }), Source));
        Assert.Contains(Source, e.Message);
        Assert.Contains($"'{type}'", e.Message);
    }

    [Fact]
    public void UnknownArchitecture()
    {
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["architectures"] = new JsonArray("GPT2LMHeadModel")), Source));
        Assert.Contains(Source, e.Message);
        Assert.Contains("'GPT2LMHeadModel'", e.Message);
        Assert.Contains("LlamaForCausalLM", e.Message);
        Assert.Contains("Qwen2ForCausalLM", e.Message);
    }

    [Fact]
    public void UnknownModelType()
    {
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["model_type"] = "gemma"), Source));
        Assert.Contains(Source, e.Message);
        Assert.Contains("'gemma'", e.Message);
        Assert.Contains("llama", e.Message);
        Assert.Contains("mistral", e.Message);
        Assert.Contains("qwen2", e.Message);
    }

    [Fact]
    public void UnsupportedActivation()
    {
        var e = Assert.Throws<NotSupportedException>(() => LlamaConfig.Parse(Edited(o => o["hidden_act"] = "gelu"), Source));
        Assert.Contains("hidden_act 'gelu'", e.Message);
    }

    [Theory]
    [InlineData("model_type")]
    [InlineData("vocab_size")]
    [InlineData("hidden_size")]
    [InlineData("intermediate_size")]
    [InlineData("num_hidden_layers")]
    [InlineData("num_attention_heads")]
    [InlineData("max_position_embeddings")]
    public void MissingRequiredField(string field)
    {
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(Edited(o => o.Remove(field)), Source));
        Assert.Contains(Source, e.Message);
        Assert.Contains($"'{field}' is missing", e.Message);
    }

    [Theory]
    [InlineData("hidden_size", "\"2048\"", "'hidden_size' is \"2048\"; expected an integer")]
    [InlineData("hidden_size", "2048.5", "'hidden_size' is 2048.5; expected an integer")]
    [InlineData("vocab_size", "1e12", "'vocab_size' is 1e12; expected an integer")]
    [InlineData("hidden_size", "0", "'hidden_size' is 0; expected a positive integer")]
    [InlineData("num_hidden_layers", "-2", "'num_hidden_layers' is -2; expected a positive integer")]
    [InlineData("num_key_value_heads", "0", "'num_key_value_heads' is 0; expected a positive integer")]
    [InlineData("num_key_value_heads", "5", "'num_key_value_heads' 5 does not divide num_attention_heads 32")]
    [InlineData("num_attention_heads", "30", "'hidden_size' 2048 is not divisible by num_attention_heads 30")]
    [InlineData("head_dim", "63", "'head_dim' is 63; expected a positive even number")]
    [InlineData("rms_norm_eps", "0", "'rms_norm_eps' is 0; expected a positive finite number")]
    [InlineData("rms_norm_eps", "\"1e-5\"", "'rms_norm_eps' is \"1e-5\"; expected a finite number")]
    [InlineData("rope_theta", "-1", "'rope_theta' is -1; expected a positive finite number")]
    [InlineData("tie_word_embeddings", "1", "'tie_word_embeddings' is 1; expected true or false")]
    [InlineData("architectures", "[]", "'architectures' is []; expected a non-empty array of strings")]
    [InlineData("architectures", "\"LlamaForCausalLM\"", "'architectures' is \"LlamaForCausalLM\"; expected a non-empty array")]
    [InlineData("rope_scaling", "4", "'rope_scaling' is 4; expected an object or null")]
    [InlineData("rope_scaling", "{\"factor\": 2}", "'rope_scaling' has neither 'rope_type' nor 'type'")]
    [InlineData("rope_scaling", "{\"type\": \"linear\"}", "'rope_scaling.factor' is missing")]
    [InlineData("rope_scaling", "{\"type\": \"linear\", \"factor\": -2}", "'rope_scaling.factor' is -2; expected a positive number")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 4, \"high_freq_factor\": 1, \"original_max_position_embeddings\": 8192}", "'rope_scaling.high_freq_factor' is 1; expected more than low_freq_factor 4")]
    [InlineData("rope_scaling", "{\"rope_type\": \"llama3\", \"factor\": 8, \"low_freq_factor\": 1, \"high_freq_factor\": 4}", "'rope_scaling.original_max_position_embeddings' is missing")]
    public void BadValues(string field, string json, string expected)
    {
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(Edited(o => o[field] = JsonNode.Parse(json)), Source));
        Assert.Contains(Source, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("")]
    [InlineData("[1, 2]")]
    [InlineData("{\"model_type\": \"llama\",}")]
    [InlineData("{\"model_type\": \"llama\", \"model_type\": \"llama\"}")]
    [InlineData("{\"x\": NaN}")]
    public void MalformedJson(string json)
    {
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(json, Source));
        Assert.Contains(Source, e.Message);
    }

    [Fact]
    public void LoadNamesTheFullPath()
    {
        using var dir = new TempDir();
        string path = dir.File("config.json");
        File.WriteAllText(path, Edited(o => o.Remove("vocab_size")));
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(path));
        Assert.Contains(path, e.Message);
        Assert.Contains("'vocab_size' is missing", e.Message);

        File.WriteAllBytes(path, [(byte)'{', 0xFF, (byte)'}']);
        var bad = Assert.Throws<InvalidDataException>(() => LlamaConfig.Load(path));
        Assert.Contains("UTF-8", bad.Message);
    }

    [Theory]
    [InlineData("num_hidden_layers", 2147483647L)]
    [InlineData("num_hidden_layers", 1025L)]
    [InlineData("vocab_size", 2147483647L)]
    [InlineData("hidden_size", 2147483646L)]
    [InlineData("intermediate_size", 2147483647L)]
    [InlineData("max_position_embeddings", 2147483647L)]
    [InlineData("num_labels", 2147483647L)]
    [InlineData("vocab_size", 9223372036854775807L)]
    public void SizesBeyondTheSaneMaximaAreRefusedBeforeAnythingIsAllocated(string field, long value)
    {
        string json = Edited(o =>
        {
            o[field] = value;
            if (field == "num_labels")
            {
                o["architectures"] = new System.Text.Json.Nodes.JsonArray("LlamaForSequenceClassification");
            }
        });
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(json, Source));
        Assert.Contains($"'{field}'", e.Message, StringComparison.Ordinal);
        Assert.Contains(Source, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void CreateChecksTheSameMaxima()
    {
        var e = Assert.Throws<ArgumentException>(() => LlamaConfig.Create(64, 32, 48, int.MaxValue, 4));
        Assert.Contains("num_hidden_layers is 2147483647; the largest supported is 1024", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => LlamaConfig.Create(int.MaxValue, 32, 48, 1, 4));
        Assert.Contains("vocab_size", e.Message, StringComparison.Ordinal);
        e = Assert.Throws<ArgumentException>(() => LlamaConfig.Create(1 << 20, 1 << 16, 48, 1, 4));
        Assert.Contains("more than 2^34 elements", e.Message, StringComparison.Ordinal);
        Assert.Throws<ArgumentOutOfRangeException>(() => LlamaConfig.Create(64, 32, 48, 1, 4).ForSequenceClassification(LlamaConfig.MaxLabels + 1));
    }

    [Fact]
    public void ToJsonRoundTripsEveryRealWorldConfig()
    {
        using var dir = new TempDir();
        foreach (string json in RealWorldConfigs.All)
        {
            var c = LlamaConfig.Parse(json, Source);
            string path = dir.File("config.json");
            File.WriteAllText(path, c.ToJson());
            var back = LlamaConfig.Load(path);
            Assert.Equal(c, back);
        }
    }

    [Fact]
    public void ToJsonWritesHuggingFaceKeys()
    {
        var node = JsonNode.Parse(LlamaConfig.Parse(RealWorldConfigs.Llama32_1B, Source).ToJson())!.AsObject();
        Assert.Equal("LlamaForCausalLM", node["architectures"]![0]!.GetValue<string>());
        Assert.Equal(8, node["num_key_value_heads"]!.GetValue<int>());
        Assert.Equal(64, node["head_dim"]!.GetValue<int>());
        Assert.Equal("llama3", node["rope_scaling"]!["rope_type"]!.GetValue<string>());
        Assert.Equal(8192, node["rope_scaling"]!["original_max_position_embeddings"]!.GetValue<int>());
        Assert.False(node["attention_bias"]!.GetValue<bool>());
        Assert.Equal(node.Select(kv => kv.Key).Order(StringComparer.Ordinal), node.Select(kv => kv.Key));
    }

    [Fact]
    public void CreateBuildsValidatedConfigs()
    {
        var c = LlamaConfig.Create(vocabSize: 256, hiddenSize: 64, intermediateSize: 176, numHiddenLayers: 2, numAttentionHeads: 4, numKeyValueHeads: 2);
        Assert.Equal(("llama", "LlamaForCausalLM", 16), (c.ModelType, c.Architecture, c.HeadDim));
        Assert.Equal(c, LlamaConfig.Parse(c.ToJson(), "created"));

        var q = LlamaConfig.Create(256, 64, 176, 2, 4, modelType: "qwen2");
        Assert.True(q.QkvBias);
        Assert.False(q.OBias);

        var e = Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 2, 5));
        Assert.Equal("hiddenSize", e.ParamName);
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 0, 4));
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 2, 4, numKeyValueHeads: 3));
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 2, 4, modelType: "gpt2"));
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 2, 4, modelType: "mistral", attentionBias: true));
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 2, 4, ropeScaling: new RopeScaling("yarn", 2)));
        Assert.Throws<ArgumentException>(() => LlamaConfig.Create(256, 64, 176, 2, 4, rmsNormEps: double.NaN));
    }

    [Fact]
    public void WithShrinksARealConfig()
    {
        var real = LlamaConfig.Parse(RealWorldConfigs.Llama32_1B, Source);
        var small = real.With(numHiddenLayers: 2, vocabSize: 512);
        Assert.Equal((2, 512, 2048, 64), (small.NumHiddenLayers, small.VocabSize, small.HiddenSize, small.HeadDim));
        Assert.Equal(real.RopeScaling, small.RopeScaling);
        Assert.Equal(real.NumKeyValueHeads, small.NumKeyValueHeads);

        var tiny = LlamaConfig.Parse(RealWorldConfigs.TinyLlama, Source).With(hiddenSize: 256, numAttentionHeads: 8, numKeyValueHeads: 2);
        Assert.Equal(32, tiny.HeadDim); // derived, since TinyLlama's config has no head_dim
        Assert.Throws<ArgumentException>(() => tiny.With(numAttentionHeads: 6));
    }
}
