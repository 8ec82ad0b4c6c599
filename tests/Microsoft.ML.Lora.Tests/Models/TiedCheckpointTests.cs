using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;
using Microsoft.ML.Lora.Tests.Lora;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>
/// Tied checkpoints as they are published: the one matrix stored as <c>model.embed_tokens.weight</c> (transformers'
/// save_pretrained), only as <c>lm_head.weight</c> (what some converters and older savers keep), or under one name
/// with the other named in the safetensors metadata (<c>safetensors.torch.save_model</c>).
/// </summary>
public sealed class TiedCheckpointTests : IDisposable
{
    private const string Embed = "model.embed_tokens.weight";
    private const string Head = "lm_head.weight";

    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-tied-" + Guid.NewGuid().ToString("N"));

    public TiedCheckpointTests() => Directory.CreateDirectory(root);

    public void Dispose() => Directory.Delete(root, recursive: true);

    public static TheoryData<string> Layouts() => new("head-only", "head-only-with-alias", "embed-with-alias");

    [Theory]
    [MemberData(nameof(Layouts))]
    public void EveryLayoutLoadsTrainsAndMergesAsTheCanonicalOne(string layout)
    {
        string dir = Variant(layout);
        var batch = TiedBatch();
        using var canonical = LlamaForCausalLM.Load(FixturePaths.Case("llama_tied_headdim"));
        using var model = LlamaForCausalLM.Load(dir);

        Assert.Equal(canonical.EmbedTokens.Value.ToFloatArray(), model.EmbedTokens.Value.ToFloatArray());
        Assert.Equal(Embed, model.EmbedTokens.Name);
        Assert.Equal(LoraAdapterTests.Logits(canonical, batch), LoraAdapterTests.Logits(model, batch));

        var options = new LoraOptions { Rank = 4, TargetModules = ["q_proj", "v_proj", "down_proj"] };
        foreach (var m in new[] { canonical, model })
        {
            var random = new Random(5);
            foreach (var a in m.AddAdapter(options, seed: 2))
            {
                LoraInitializerAccess.Fill(a.B.Value.AsF32(), random, 0.3);
            }
        }

        Assert.Equal(canonical.ForwardBackward(batch).Mean, model.ForwardBackward(batch).Mean);
        var expectedGrads = canonical.TrainableParameters().ToDictionary(p => p.Name, p => p.Grad!.ToFloatArray());
        var grads = model.TrainableParameters().ToDictionary(p => p.Name, p => p.Grad!.ToFloatArray());
        Assert.Equal(expectedGrads.Keys.Order(), grads.Keys.Order());
        Assert.All(expectedGrads, g => Assert.Equal(g.Value, grads[g.Key]));
        Assert.Contains(grads.Values, g => g.Any(static v => v != 0));

        model.MergeAndUnload();
        var mergedLogits = LoraAdapterTests.Logits(model, batch);
        string saved = Path.Combine(root, layout + "-merged");
        model.Save(saved);
        using (var source = SafeTensorsFolder.Open(dir))
        using (var folder = SafeTensorsFolder.Open(saved))
        {
            Assert.Equal(source.Names, folder.Names);
            Assert.Equal(source.Aliases, folder.Aliases);
        }

        using var reloaded = LlamaForCausalLM.Load(saved);
        Assert.Equal(mergedLogits, LoraAdapterTests.Logits(reloaded, batch));

        string onnx = Path.Combine(root, layout + ".onnx");
        LlamaOnnxExporter.Export(reloaded, onnx);
        Assert.True(new FileInfo(onnx).Length > 0);
    }

    [Theory]
    [InlineData("canonical")]
    [MemberData(nameof(Layouts))]
    public void SavingKeepsTheLayoutItCameInAndEveryByte(string layout)
    {
        string dir = layout == "canonical" ? FixturePaths.Case("llama_tied_headdim") : Variant(layout);
        string saved = Path.Combine(root, layout + "-saved");
        using (var model = LlamaForCausalLM.Load(dir))
        {
            Assert.Equal(layout.StartsWith("head-only", StringComparison.Ordinal) ? Head : Embed, model.TiedLayout!.StoredName);
            model.Save(saved);
        }

        using var source = SafeTensorsFolder.Open(dir);
        using var folder = SafeTensorsFolder.Open(saved);
        Assert.Equal(source.Names, folder.Names);
        Assert.Equal(source.Aliases, folder.Aliases);
        Assert.Equal(layout.Contains("alias", StringComparison.Ordinal) ? 1 : 0, folder.Aliases.Count);
        foreach (string name in source.Names)
        {
            Assert.Equal(source.Info(name).Shape, folder.Info(name).Shape);
            Assert.True(source.FileOf(name).GetBytes(name).SequenceEqual(folder.FileOf(name).GetBytes(name)), $"{layout}: {name} changed on save");
        }
    }

    [Fact]
    public void ANewTiedModelSavesAsTransformersDoes()
    {
        var config = LlamaConfig.Load(Path.Combine(FixturePaths.Case("llama_tied_headdim"), "config.json"));
        using var model = LlamaForCausalLM.CreateRandom(config, seed: 4);
        Assert.Equal(new TiedWeightLayout(Embed, null), model.TiedLayout);
        string saved = Path.Combine(root, "random");
        model.Save(saved);
        using var folder = SafeTensorsFolder.Open(saved);
        Assert.Contains(Embed, folder.Names);
        Assert.DoesNotContain(Head, folder.Names);
        Assert.Empty(folder.Aliases);
        Assert.Equal("pt", folder.Metadata["format"]);
    }

    [Fact]
    public void AnUntiedConfigStillNeedsItsEmbeddingAndSaysWhichTensorIsMissing()
    {
        string dir = Variant("head-only");
        string config = Path.Combine(dir, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace("\"tie_word_embeddings\": true", "\"tie_word_embeddings\": false", StringComparison.Ordinal));
        var e = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(dir));
        Assert.Contains($"'{Embed}'", e.Message, StringComparison.Ordinal);
        Assert.Contains(dir, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ATiedConfigWithNeitherNameSaysTheEmbeddingIsMissing()
    {
        string dir = Variant("neither");
        var e = Assert.Throws<InvalidDataException>(() => LlamaForCausalLM.Load(dir));
        Assert.Contains($"'{Embed}'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void MetadataAliasesResolveOnlyWhenTheKeyIsAbsentAndTheValueIsStored()
    {
        string dir = Variant("head-only-with-alias", extraMetadata: new() { ["note"] = "lm_head.weight", ["missing"] = "no.such.tensor" });
        using var folder = SafeTensorsFolder.Open(dir);
        Assert.Equal(new Dictionary<string, string> { [Embed] = Head, ["note"] = Head }, folder.Aliases);
        Assert.True(folder.Contains(Embed));
        Assert.False(folder.Contains("missing"));
        Assert.False(folder.Contains("format"));
        Assert.Equal(Head, folder.Resolve(Embed));
        Assert.Equal("other", folder.Resolve("other"));
        Assert.DoesNotContain(Embed, folder.Names);
        Assert.Equal(folder.Info(Head).Shape, folder.Info(Embed).Shape);
        Assert.Equal(folder.ReadFloats(Head), folder.ReadFloats(Embed));
        var e = Assert.Throws<InvalidDataException>(() => folder.ReadFloats("missing"));
        Assert.Contains("'missing'", e.Message, StringComparison.Ordinal);
    }

    private static CausalLmBatch TiedBatch()
    {
        using var expected = SafeTensorsFile.Open(Path.Combine(FixturePaths.Case("llama_tied_headdim"), "expected.safetensors"));
        return ReferenceModelTests.BatchOf(expected);
    }

    /// <summary>A copy of the tied fixture whose weights file stores the tied matrix as <paramref name="layout"/> says.</summary>
    private string Variant(string layout, Dictionary<string, string>? extraMetadata = null)
    {
        string source = FixturePaths.Case("llama_tied_headdim");
        string dir = Path.Combine(root, layout);
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(source, "config.json"), Path.Combine(dir, "config.json"));
        using var weights = SafeTensorsFile.Open(Path.Combine(source, "model.safetensors"));
        var entries = new List<SafeTensorEntry>();
        foreach (var t in weights.Tensors.Values)
        {
            string name = t.Name == Embed && layout.StartsWith("head-only", StringComparison.Ordinal) ? Head : t.Name;
            if (t.Name == Embed && layout == "neither")
            {
                continue;
            }

            entries.Add(SafeTensorEntry.FromBytes(name, t.DType, t.Shape, weights.GetBytes(t.Name).ToArray()));
        }

        var metadata = new Dictionary<string, string>(extraMetadata ?? []) { ["format"] = "pt" };
        if (layout == "head-only-with-alias")
        {
            metadata[Embed] = Head;
        }
        else if (layout == "embed-with-alias")
        {
            metadata[Head] = Embed;
        }

        SafeTensorsWriter.Write(Path.Combine(dir, "model.safetensors"), entries, metadata);
        return dir;
    }
}
