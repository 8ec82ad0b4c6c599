using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>
/// Broken or foreign adapter folders and unwritable destinations: each fails with a message that names the
/// file, key or field and says what was expected, and leaves the model (or the file system) as it was.
/// </summary>
public sealed class PeftAdapterBadInputTests : IDisposable
{
    private const string Source = "peft_llama_gqa";
    private const string QA = "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight";
    private const string QB = "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight";

    private readonly PeftTestFiles files = new();

    public void Dispose() => files.Dispose();

    [Fact]
    public void KeyOfALayerThisModelDoesNotHaveSuggestsAnotherBaseModel()
    {
        // As if trained on a 4-layer model: layer 1's tensors are renamed to layer 3.
        string dir = files.Rewrite(Source, "layer3", rename: k => k.Replace(".layers.1.", ".layers.3.", StringComparison.Ordinal));
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains("adapter key 'base_model.model.model.layers.3.", e.Message, StringComparison.Ordinal);
        Assert.Contains("has no module in this model (2 layers", e.Message, StringComparison.Ordinal);
        Assert.Contains("another base model", e.Message, StringComparison.Ordinal);
        Assert.Contains("adapter_model.safetensors", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WrongShapeNamesKeyExpectedAndSeenShapes()
    {
        string dir = files.Rewrite(Source, "shape", entry: (k, v, shape) => k == QA ? SafeTensorEntry.FromFloats(k, [4, 33], new float[4 * 33]) : null);
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains($"'{QA}' has shape [4, 33]; expected [4, 32]", e.Message, StringComparison.Ordinal);
        Assert.Contains("another base model", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RankDisagreeingWithTheConfigIsAnError()
    {
        // r = 4 in the config, but layer 0's q_proj pair is rank 3.
        string dir = files.Rewrite(Source, "rank", entry: (k, v, shape) =>
            k == QA ? SafeTensorEntry.FromFloats(k, [3, 32], v[..(3 * 32)]) : k == QB ? SafeTensorEntry.FromFloats(k, [32, 3], new float[32 * 3]) : null);
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains("r = 4", e.Message, StringComparison.Ordinal);
        Assert.Contains(QA, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AWithoutBIsAnError()
    {
        string dir = files.Rewrite(Source, "a-only", rename: k => k == QB ? null : k);
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains("'model.layers.0.self_attn.q_proj' has lora_A but no lora_B", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void TargetedModuleWithoutWeightsIsAnError()
    {
        string dir = files.Rewrite(Source, "missing-module", rename: k => k.Contains(".layers.0.self_attn.v_proj.", StringComparison.Ordinal) ? null : k);
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains("selects model.layers.0.self_attn.v_proj but the file has no lora_A / lora_B", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void WeightsForAModuleTheConfigDoesNotTargetAreAnError()
    {
        string dir = files.Rewrite(Source, "untargeted", config: j => j.Replace("\"q_proj\",", string.Empty, StringComparison.Ordinal));
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains("adapter weights for model.layers.0.self_attn.q_proj", e.Message, StringComparison.Ordinal);
        Assert.Contains("does not select", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void BiasWithBiasNoneAndUnknownWholeWeightsAreErrors()
    {
        // qwen2's adapter carries trained biases under bias "lora_only"; with "none" they are unexplained.
        string dir = files.Rewrite("peft_qwen2_bias", "bias-none", config: j => j.Replace("\"lora_only\"", "\"none\"", StringComparison.Ordinal));
        var e = AssertLoadFails<InvalidDataException>(dir, "qwen2_bias");
        Assert.Contains("base_layer.bias' is present but adapter_config.json has bias \"none\"", e.Message, StringComparison.Ordinal);

        string rslora = files.Rewrite("peft_llama_gqa_rslora", "no-modules-to-save", config: j => j.Replace("\"modules_to_save\": [\n    \"lm_head\"\n  ]", "\"modules_to_save\": null", StringComparison.Ordinal));
        e = AssertLoadFails<InvalidDataException>(rslora);
        Assert.Contains("'base_model.model.lm_head.weight' is neither LoRA nor a bias, and 'lm_head' is not in modules_to_save", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MissingConfigOrWeightsNameTheFolder()
    {
        string dir = files.Rewrite(Source, "no-config");
        File.Delete(Path.Combine(dir, PeftAdapterConfig.FileName));
        var e = AssertLoadFails<FileNotFoundException>(dir);
        Assert.Contains($"'{dir}' is not a PEFT adapter folder: adapter_config.json not found", e.Message, StringComparison.Ordinal);

        string noWeights = files.Rewrite(Source, "no-weights");
        File.Delete(Path.Combine(noWeights, PeftAdapter.WeightsFileName));
        e = AssertLoadFails<FileNotFoundException>(noWeights);
        Assert.Contains("no adapter_model.safetensors", e.Message, StringComparison.Ordinal);

        AssertLoadFails<DirectoryNotFoundException>(files.Path("nowhere"));
    }

    [Fact]
    public void PickleWeightsAskForConversion()
    {
        string dir = files.Rewrite(Source, "bin");
        File.Move(Path.Combine(dir, PeftAdapter.WeightsFileName), Path.Combine(dir, "adapter_model.bin"));
        var e = AssertLoadFails<NotSupportedException>(dir);
        Assert.Contains("adapter_model.bin", e.Message, StringComparison.Ordinal);
        Assert.Contains("convert to safetensors", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{ \"r\": 4,", "is not valid JSON")]
    [InlineData("[]", "expected a JSON object")]
    [InlineData("{\"peft_type\": \"LORA\", \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "'r' is missing; expected an integer")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": \"4\", \"lora_alpha\": 8}", "'r' is \"4\"; expected an integer")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 0, \"lora_alpha\": 8}", "'r' is 0; expected an integer 1 … 65536")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 2147483647, \"lora_alpha\": 8}", "'r' is 2147483647; expected an integer 1 … 65536")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4}", "'lora_alpha' is missing")]
    [InlineData("{\"r\": 4, \"lora_alpha\": 8}", "'peft_type' is missing")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"bias\": \"some\"}", "'bias' is \"some\"; expected \"none\", \"lora_only\" or \"all\"")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": [1]}", "'target_modules' is [1]; expected a list of module names")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"target_modules\": \"(q_proj\"}", "'target_modules' is the regex \"(q_proj\", which does not parse")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 0}}", "'rank_pattern.q_proj' is 0; expected an integer 1 … 65536")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"rank_pattern\": {\"q_proj\": 2147483647}}", "'rank_pattern.q_proj' is 2147483647; expected an integer 1 … 65536")]
    [InlineData("{\"peft_type\": \"LORA\", \"r\": 4, \"lora_alpha\": 8, \"lora_dropout\": 1}", "'lora_dropout' is 1; expected a number in [0, 1)")]
    public void BadConfigNamesFileAndField(string json, string message)
    {
        string dir = files.Rewrite(Source, "bad-config", config: _ => json);
        var e = AssertLoadFails<InvalidDataException>(dir);
        Assert.Contains(Path.Combine(dir, PeftAdapterConfig.FileName), e.Message, StringComparison.Ordinal);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("\"peft_type\": \"LORA\"", "\"peft_type\": \"IA3\"", "peft_type 'IA3' is not supported")]
    [InlineData("\"use_dora\": false", "\"use_dora\": true", "'use_dora' is true: DoRA")]
    [InlineData("\"fan_in_fan_out\": false", "\"fan_in_fan_out\": true", "'fan_in_fan_out' is true")]
    [InlineData("\"init_lora_weights\": true", "\"init_lora_weights\": \"pissa\"", "'init_lora_weights' is \"pissa\"")]
    [InlineData("\"task_type\": \"CAUSAL_LM\"", "\"task_type\": \"TOKEN_CLS\"", "task_type 'TOKEN_CLS' is not supported")]
    [InlineData("\"layer_replication\": null", "\"layer_replication\": [[0, 2]]", "'layer_replication' is [[0, 2]]")]
    [InlineData("\"layers_pattern\": null", "\"layers_pattern\": \"h\"", "layers_pattern 'h' is not supported")]
    public void UnsupportedPeftFeaturesAreRefused(string from, string to, string message)
    {
        string dir = files.Rewrite(Source, "unsupported", config: j => j.Contains(from, StringComparison.Ordinal) ? j.Replace(from, to, StringComparison.Ordinal) : throw new InvalidOperationException($"fixture lacks {from}"));
        var e = AssertLoadFails<NotSupportedException>(dir);
        Assert.Contains(message, e.Message, StringComparison.Ordinal);
        Assert.Contains(PeftAdapterConfig.FileName, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ForeignKeysAreRefused()
    {
        string noPrefix = files.Rewrite(Source, "no-prefix", rename: k => k["base_model.model.".Length..]);
        Assert.Contains("does not start with 'base_model.model.'", AssertLoadFails<InvalidDataException>(noPrefix).Message, StringComparison.Ordinal);

        string dora = files.Rewrite(Source, "dora", entry: (k, v, shape) => null, rename: k => k == QB ? "base_model.model.model.layers.0.self_attn.q_proj.lora_magnitude_vector" : k);
        Assert.Contains("lora_magnitude_vector", AssertLoadFails<NotSupportedException>(dora).Message, StringComparison.Ordinal);
    }

    [Fact]
    public void NameAlreadyAttachedIsRefusedBeforeReading()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.LoadAdapter(PeftTestFiles.Reference(Source));
        string before = PeftTestFiles.Fingerprint(model);
        var e = Assert.Throws<ArgumentException>(() => model.LoadAdapter(PeftTestFiles.Reference(Source)));
        Assert.Contains("'default' is already attached", e.Message, StringComparison.Ordinal);
        Assert.Equal(before, PeftTestFiles.Fingerprint(model));
    }

    [Fact]
    public void DestinationThatIsAFileFailsAndLeavesNothing()
    {
        string file = files.Path("occupied");
        File.WriteAllText(file, "not a folder");
        using var model = AdaptedModel();
        var e = Assert.Throws<IOException>(() => model.SaveAdapter(file));
        Assert.Contains($"cannot save adapter 'default' to '{file}'", e.Message, StringComparison.Ordinal);
        Assert.Contains("is a file", e.Message, StringComparison.Ordinal);
        Assert.Equal("not a folder", File.ReadAllText(file));
        Assert.Equal(["occupied"], Directory.GetFileSystemEntries(files.Root).Select(Path.GetFileName));
    }

    [Fact]
    public void DestinationBelowAFileFailsAndLeavesNothing()
    {
        // Tests run as root, where a read-only folder does not stop writes; a path through a regular file always fails.
        string file = files.Path("plain-file");
        File.WriteAllText(file, "x");
        string target = Path.Combine(file, "sub", "adapter");
        using var model = AdaptedModel();
        var e = Assert.Throws<IOException>(() => model.SaveAdapter(target));
        Assert.Contains($"'{target}'", e.Message, StringComparison.Ordinal);
        Assert.Equal(["plain-file"], Directory.GetFileSystemEntries(files.Root).Select(Path.GetFileName));
    }

    [Fact]
    public void FailedRenameInAnExistingFolderLeavesNoTemporaryOrMismatchedFiles()
    {
        // A folder squatting on the weights' name makes the rename fail after both files were written.
        string dir = files.Path("squatted");
        Directory.CreateDirectory(Path.Combine(dir, PeftAdapter.WeightsFileName));
        File.WriteAllText(Path.Combine(dir, PeftAdapterConfig.FileName), "{}");
        using var model = AdaptedModel();
        var e = Assert.Throws<IOException>(() => model.SaveAdapter(dir));
        Assert.Contains($"'{dir}'", e.Message, StringComparison.Ordinal);
        Assert.Equal([PeftAdapter.WeightsFileName], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        Assert.Throws<FileNotFoundException>(() => AdaptedModel().LoadAdapter(dir, "again"));
    }

    [Fact]
    public void SavingRequiresTheAdapterAndMatchingOptions()
    {
        using var model = AdaptedModel();
        var e = Assert.Throws<ArgumentException>(() => model.SaveAdapter(files.Path("x"), "nope"));
        Assert.Contains("no adapter named 'nope' to save; attached: default", e.Message, StringComparison.Ordinal);

        e = Assert.Throws<ArgumentException>(() => model.SaveAdapter(files.Path("x"), options: new LoraOptions { Rank = 2, Alpha = 8, TargetModules = ["q_proj"] }));
        Assert.Contains("they give r = 2, s = 4; the adapter has r = 2, s = 16", e.Message, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(files.Root));
    }

    private static LlamaForCausalLM AdaptedModel()
    {
        var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        model.AddAdapter(new LoraOptions { Rank = 2, TargetModules = ["q_proj"] });
        return model;
    }

    private static TException AssertLoadFails<TException>(string dir, string baseCase = "llama_gqa")
        where TException : Exception
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(baseCase));
        var batch = PeftAdapterTests.Batch(baseCase);
        var logits = LoraAdapterTests.Logits(model, batch);
        string before = PeftTestFiles.Fingerprint(model);
        var e = Assert.Throws<TException>(() => model.LoadAdapter(dir));
        Assert.Equal(before, PeftTestFiles.Fingerprint(model));
        Assert.Empty(model.Adapters());
        Assert.Equal(logits, LoraAdapterTests.Logits(model, batch));
        return e;
    }
}
