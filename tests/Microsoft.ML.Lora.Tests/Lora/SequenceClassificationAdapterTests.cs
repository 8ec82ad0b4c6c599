using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Models;

namespace Microsoft.ML.Lora.Tests.Lora;

/// <summary>LoRA on a classifier: the score head is a module to save (never adapted), saved and loaded PEFT's way (SEQ_CLS).</summary>
public sealed class SequenceClassificationAdapterTests : IDisposable
{
    // Merged weights W + s·B·A in F32 vs the adapter computed on the side: one extra rounding per weight
    // (~6e-8 relative) moves 2-layer logits by ~1e-6 of their scale; 1e-5 is the bar (as in the merge tests).
    private const double MergeTolerance = 1e-5;

    private readonly PeftTestFiles files = new();

    public void Dispose() => files.Dispose();

    [Fact]
    public void AllLinearNeverAdaptsScoreAndTrainsItFully()
    {
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        var adapters = model.AddAdapter(new LoraOptions { Rank = 2 });
        Assert.Equal(14, adapters.Count); // 7 projections × 2 layers
        Assert.DoesNotContain(adapters, static a => a.ModuleName == "score");
        Assert.True(model.LmHead.Weight.Trainable);
        Assert.Contains(model.TrainableParameters(), static p => p.Name == "score.weight");

        using var other = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        var e = Assert.Throws<ArgumentException>(() => other.AddAdapter(new LoraOptions { TargetModules = ["q_proj", "score"] }));
        Assert.Contains("'score' is the classification head", e.Message, StringComparison.Ordinal);
        Assert.Empty(other.Adapters());
    }

    [Fact]
    public void SaveWritesSeqClsConfigAndPeftKeyAndLoadGivesIdenticalLogits()
    {
        using var expected = SequenceClassificationReferenceTests.Expected();
        var rows = SequenceClassificationReferenceTests.Rows(expected);
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        var before = SequenceClassification.Logits(model, rows);
        Train(model);
        var trained = SequenceClassification.Logits(model, rows);
        Assert.NotEqual(SequenceClassificationReferenceTests.Flat(before), SequenceClassificationReferenceTests.Flat(trained));

        string dir = files.Path("adapter");
        model.SaveAdapter(dir);
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(dir, "adapter_config.json")))!;
        Assert.Equal("SEQ_CLS", config["task_type"]!.GetValue<string>());
        Assert.Equal(["score"], config["modules_to_save"]!.AsArray().Select(static n => n!.GetValue<string>()));
        using (var file = SafeTensorsFile.Open(Path.Combine(dir, PeftAdapter.WeightsFileName)))
        {
            Assert.Equal(model.LmHead.Weight.Value.ToFloatArray(), file.ReadFloats("base_model.model.score.weight"));
            Assert.DoesNotContain(file.Tensors.Keys, static k => k.Contains("score.lora_", StringComparison.Ordinal) || k.Contains("modules_to_save", StringComparison.Ordinal));
        }

        using var fresh = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        Assert.Equal(SequenceClassificationReferenceTests.Flat(before), SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(fresh, rows)));
        fresh.LoadAdapter(dir);
        Assert.Equal(SequenceClassificationReferenceTests.Flat(trained), SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(fresh, rows)));

        // Saving the loaded adapter again (score not trainable now) still carries the head.
        string again = files.Path("again");
        fresh.SaveAdapter(again);
        using var file2 = SafeTensorsFile.Open(Path.Combine(again, PeftAdapter.WeightsFileName));
        Assert.Equal(model.LmHead.Weight.Value.ToFloatArray(), file2.ReadFloats("base_model.model.score.weight"));
    }

    [Fact]
    public void MergeAndUnloadKeepsTheTrainedHeadAndTheSavedFolderLoadsAsAClassifier()
    {
        using var expected = SequenceClassificationReferenceTests.Expected();
        var rows = SequenceClassificationReferenceTests.Rows(expected);
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        Train(model);
        var trained = SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(model, rows));
        var head = model.LmHead.Weight.Value.ToFloatArray();

        model.MergeAndUnload();
        Assert.Empty(model.Adapters());
        Assert.Equal(head, model.LmHead.Weight.Value.ToFloatArray());
        var merged = SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(model, rows));
        ReferenceModelTests.AssertClose(trained, merged, MergeTolerance, "merged classifier logits");

        string dir = files.Path("merged");
        model.Save(dir);
        using var loaded = LlamaForCausalLM.Load(dir);
        Assert.Equal((3, "LlamaForSequenceClassification"), (loaded.Config.NumLabels, loaded.Config.Architecture));
        Assert.Equal(["negative", "neutral", "positive"], loaded.Config.Id2Label);
        Assert.Equal(merged, SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(loaded, rows)));
    }

    [Fact]
    public void ClassifierAdapterMeetingACausalLmOrOtherLabelCountIsAClearErrorAndChangesNothing()
    {
        string adapter = SequenceClassificationReferenceTests.AdapterDir;
        using var reference = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);

        using var causal = LlamaForCausalLM.CreateRandom(reference.Config.ForCausalLM());
        string print = PeftTestFiles.Fingerprint(causal);
        var e = Assert.Throws<InvalidDataException>(() => causal.LoadAdapter(adapter));
        Assert.Contains("cannot load into a causal LM", e.Message, StringComparison.Ordinal);
        Assert.Contains("numLabels: 3", e.Message, StringComparison.Ordinal);
        Assert.Equal(print, PeftTestFiles.Fingerprint(causal));

        using var two = LlamaForCausalLM.CreateRandom(reference.Config.ForSequenceClassification(2));
        print = PeftTestFiles.Fingerprint(two);
        e = Assert.Throws<InvalidDataException>(() => two.LoadAdapter(adapter));
        Assert.Contains("a head of 3 labels; this model classifies into 2 labels", e.Message, StringComparison.Ordinal);
        Assert.Equal(print, PeftTestFiles.Fingerprint(two));

        using var classifier = LlamaForCausalLM.CreateRandom(FixtureConfig("llama_gqa").ForSequenceClassification(3));
        e = Assert.Throws<InvalidDataException>(() => classifier.LoadAdapter(PeftTestFiles.Reference("peft_llama_gqa")));
        Assert.Contains("a causal-LM adapter (task_type CAUSAL_LM) cannot load into a sequence classifier", e.Message, StringComparison.Ordinal);

        // task_type SEQ_CLS alone marks a classifier adapter, even without a head in the file.
        string seqCls = files.Rewrite("peft_llama_gqa", "seq-cls", config: static j => j.Replace("\"CAUSAL_LM\"", "\"SEQ_CLS\"", StringComparison.Ordinal));
        using var gqa = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        e = Assert.Throws<InvalidDataException>(() => gqa.LoadAdapter(seqCls));
        Assert.Contains("(task_type SEQ_CLS, head 'score' with no score weight) cannot load into a causal LM", e.Message, StringComparison.Ordinal);

        string headless = files.Rewrite(Path.GetRelativePath(FixturePaths.Root, adapter), "headless", rename: static k => k.EndsWith("score.weight", StringComparison.Ordinal) ? null : k);
        e = Assert.Throws<InvalidDataException>(() => reference.LoadAdapter(headless));
        Assert.Contains("has no 'base_model.model.score.weight'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void LoadForSequenceClassificationGivesACausalBodyANewHeadAndRefusesAnotherLabelCount()
    {
        string causalDir = FixturePaths.Case("llama_gqa");
        using var causal = LlamaForCausalLM.Load(causalDir);
        using var classifier = LlamaForCausalLM.LoadForSequenceClassification(causalDir, 4, DType.BF16, ["a", "b", "c", "d"], seed: 5);
        Assert.Equal(("LlamaForSequenceClassification", 4), (classifier.Config.Architecture, classifier.Config.NumLabels));
        Assert.Equal(["a", "b", "c", "d"], classifier.Config.Id2Label);
        Assert.Equal(DType.F32, classifier.LmHead.Weight.Value.DType);
        Assert.Equal(DType.BF16, classifier.Layers[0].SelfAttn.QProj!.Weight.Value.DType);
        var head = classifier.LmHead.Weight.Value.ToFloatArray();
        double std = Math.Sqrt(head.Average(static x => (double)x * x));
        Assert.InRange(std, 0.015, 0.025); // N(0, 0.02²), 4×32 draws: the sample std is within ±25% with overwhelming probability
        using (var bf16 = causal.Layers[1].Mlp.DownProj.Weight.Value.To(DType.BF16))
        {
            // The body is the causal model's, in the dtype asked for.
            Assert.Equal(bf16.ToFloatArray(), classifier.Layers[1].Mlp.DownProj.Weight.Value.ToFloatArray());
        }

        var e = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.LoadForSequenceClassification(SequenceClassificationReferenceTests.CaseDir, 5));
        Assert.Contains("classifier with 3 labels", e.Message, StringComparison.Ordinal);
        using var same = LlamaForCausalLM.LoadForSequenceClassification(SequenceClassificationReferenceTests.CaseDir, 3);
        using var plain = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        Assert.Equal(plain.LmHead.Weight.Value.ToFloatArray(), same.LmHead.Weight.Value.ToFloatArray());
    }

    [Fact]
    public void TiedEmbeddingBaseBecomesAClassifierWhoseAdapterRoundTrips()
    {
        // qwen2_bias ties lm_head to the embedding (as Qwen2-0.5B and SmolLM do); the score head is never tied.
        string dir = FixturePaths.Case("qwen2_bias");
        var rows = new List<int[]> { new[] { 3, 9, 27, 4 }, new[] { 11, 2 } };
        using var model = LlamaForCausalLM.LoadForSequenceClassification(dir, 2, seed: 3);
        Assert.True(model.Config.TieWordEmbeddings);
        Assert.NotSame(model.EmbedTokens, model.LmHead.Weight);
        Train(model);
        var trained = SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(model, rows));
        string adapter = files.Path("tied");
        model.SaveAdapter(adapter);

        using var fresh = LlamaForCausalLM.LoadForSequenceClassification(dir, 2, seed: 4);
        fresh.LoadAdapter(adapter);
        Assert.Equal(trained, SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(fresh, rows)));

        string merged = files.Path("tied-merged");
        fresh.MergeAndUnload();
        fresh.Save(merged);
        using var loaded = LlamaForCausalLM.Load(merged);
        Assert.Equal(("Qwen2ForSequenceClassification", 2), (loaded.Config.Architecture, loaded.Config.NumLabels));
        ReferenceModelTests.AssertClose(trained, SequenceClassificationReferenceTests.Flat(SequenceClassification.Logits(loaded, rows)), MergeTolerance, "merged tied classifier");
    }

    [Fact]
    public void NumLabelsOfAnAdapterFolderComesFromItsHead()
    {
        Assert.Equal(3, PeftAdapter.NumLabels(SequenceClassificationReferenceTests.AdapterDir));
        Assert.Null(PeftAdapter.NumLabels(PeftTestFiles.Reference("peft_llama_gqa")));
        Assert.Throws<FileNotFoundException>(() => PeftAdapter.NumLabels(files.Root));
    }

    [Fact]
    public void GenerationOnAClassifierIsAClearError()
    {
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        var e = Assert.Throws<ArgumentException>(() => Generator.Generate(model, [1, 2], new GenerationOptions()));
        Assert.Contains("sequence classifier", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void QloraKeepsTheHeadF32AndTrainable()
    {
        using var model = LlamaForCausalLM.Load(SequenceClassificationReferenceTests.CaseDir);
        model.QuantizeNf4(doubleQuant: true);
        Assert.Equal(DType.NF4, model.Layers[0].SelfAttn.QProj!.Weight.Value.DType);
        Assert.Equal(DType.F32, model.LmHead.Weight.Value.DType);
        model.AddAdapter(new LoraOptions { Rank = 2 });
        Assert.True(model.LmHead.Weight.Trainable);
    }

    private static LlamaConfig FixtureConfig(string name) => LlamaConfig.Load(Path.Combine(FixturePaths.Case(name), "config.json"));

    // Stands in for training: non-zero B everywhere and a moved head.
    private static void Train(LlamaForCausalLM model)
    {
        var random = new Random(9);
        foreach (var a in model.AddAdapter(new LoraOptions { Rank = 2, TargetModules = ["q_proj", "v_proj", "down_proj"] }, seed: 4))
        {
            LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.3);
        }

        var head = model.LmHead.Weight.Value.AsF32();
        for (int i = 0; i < head.Length; i++)
        {
            head[i] += 0.05f * (float)(random.NextDouble() - 0.5);
        }
    }
}
