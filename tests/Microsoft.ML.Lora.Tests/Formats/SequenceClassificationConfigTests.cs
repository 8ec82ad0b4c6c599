using System.Text.Json.Nodes;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>ForSequenceClassification configs: num_labels / id2label / pad_token_id read, checked and written back.</summary>
public sealed class SequenceClassificationConfigTests
{
    private const string Source = "/models/test/config.json";

    private static string Edited(Action<JsonObject> edit, string baseJson = RealWorldConfigs.TinyLlama)
    {
        var node = JsonNode.Parse(baseJson)!.AsObject();
        edit(node);
        return node.ToJsonString();
    }

    private static string Classifier(Action<JsonObject> edit, string baseJson = RealWorldConfigs.TinyLlama) => Edited(
        n =>
        {
            string type = n["model_type"]!.GetValue<string>();
            n["architectures"] = new JsonArray(LlamaConfig.SupportedSequenceClassification[type]);
            edit(n);
        },
        baseJson);

    [Theory]
    [InlineData("llama", "LlamaForSequenceClassification")]
    [InlineData("qwen2", "Qwen2ForSequenceClassification")]
    [InlineData("mistral", "MistralForSequenceClassification")]
    public void ClassifierArchitecturesLoadWithTheirLabels(string modelType, string architecture)
    {
        string baseJson = modelType switch { "qwen2" => RealWorldConfigs.Qwen2_05B, "mistral" => RealWorldConfigs.Mistral7B, _ => RealWorldConfigs.TinyLlama };
        var c = LlamaConfig.Parse(Classifier(n => n["id2label"] = new JsonObject { ["0"] = "no", ["1"] = "yes", ["2"] = "maybe" }, baseJson), Source);
        Assert.Equal((modelType, architecture, 3), (c.ModelType, c.Architecture, c.NumLabels));
        Assert.Equal(["no", "yes", "maybe"], c.Id2Label);
        Assert.Equal(3, c.OutputSize);
    }

    [Fact]
    public void NumLabelsAloneGivesDefaultNamesAndNoneGivesTransformersDefaultOfTwo()
    {
        var c = LlamaConfig.Parse(Classifier(n => n["num_labels"] = 4), Source);
        Assert.Equal(["LABEL_0", "LABEL_1", "LABEL_2", "LABEL_3"], c.Id2Label);
        var d = LlamaConfig.Parse(Classifier(static _ => { }), Source);
        Assert.Equal(LlamaConfig.DefaultNumLabels, d.NumLabels);
    }

    [Fact]
    public void CausalLmIgnoresLabelFieldsAndKeepsPadToken()
    {
        var c = LlamaConfig.Parse(Edited(n => { n["id2label"] = new JsonObject { ["0"] = "a", ["1"] = "b" }; n["pad_token_id"] = 5; }), Source);
        Assert.Null(c.NumLabels);
        Assert.Empty(c.Id2Label);
        Assert.Equal(c.VocabSize, c.OutputSize);
        Assert.Equal(5, c.PadTokenId);
    }

    [Theory]
    [InlineData("""{"num_labels": 3, "id2label": {"0": "a", "1": "b"}}""", "'num_labels' is 3 but 'id2label' names 2 labels")]
    [InlineData("""{"id2label": {"0": "a", "2": "b"}}""", "'id2label' has key \"2\"")]
    [InlineData("""{"id2label": {"0": "a", "x": "b"}}""", "'id2label' has key \"x\"")]
    [InlineData("""{"id2label": {"0": "a", "1": 7}}""", "'id2label.1' is 7")]
    [InlineData("""{"id2label": {"0": "a", "1": "a"}}""", "gives the name 'a' to ids 0 and 1")]
    [InlineData("""{"id2label": {}}""", "'id2label' is empty")]
    [InlineData("""{"num_labels": 0}""", "'num_labels' is 0")]
    [InlineData("""{"id2label": {"0": "a", "1": "b"}, "label2id": {"a": 1, "b": 0}}""", "'label2id.a' is 1")]
    [InlineData("""{"architectures": ["MistralForSequenceClassification"]}""", "does not match model_type 'llama'")]
    public void InconsistentLabelFieldsAreErrorsNamingFileAndField(string fields, string expected)
    {
        var extra = JsonNode.Parse(fields)!.AsObject();
        string json = Classifier(n =>
        {
            foreach (var (key, value) in extra)
            {
                n[key] = value?.DeepClone();
            }
        });
        var e = Assert.Throws<InvalidDataException>(() => LlamaConfig.Parse(json, Source));
        Assert.Contains(Source, e.Message, StringComparison.Ordinal);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void ToJsonWritesLabelsAndPadTokenAndParsesBackEqual()
    {
        var c = LlamaConfig.Parse(Classifier(n => { n["id2label"] = new JsonObject { ["0"] = "neg", ["1"] = "pos" }; n["pad_token_id"] = 2; }), Source);
        string json = c.ToJson();
        var node = JsonNode.Parse(json)!.AsObject();
        Assert.Equal("LlamaForSequenceClassification", node["architectures"]![0]!.GetValue<string>());
        Assert.Equal("pos", node["id2label"]!["1"]!.GetValue<string>());
        Assert.Equal(0, node["label2id"]!["neg"]!.GetValue<int>());
        Assert.Equal(2, node["pad_token_id"]!.GetValue<int>());
        Assert.Equal(c, LlamaConfig.Parse(json, "round trip"));
        Assert.NotEqual(c, c.ForSequenceClassification(2, ["pos", "neg"]));
        Assert.Equal(c.ForCausalLM(), LlamaConfig.Parse(c.ForCausalLM().ToJson(), "causal"));
        Assert.Null(c.ForCausalLM().NumLabels);
    }

    [Fact]
    public void CreateAndWithKeepClassifierFields()
    {
        var c = LlamaConfig.Create(64, 32, 48, 2, 4, numLabels: 3, padTokenId: 0);
        Assert.Equal(("LlamaForSequenceClassification", 3, 0), (c.Architecture, c.NumLabels, c.PadTokenId));
        var smaller = c.With(numHiddenLayers: 1);
        Assert.Equal((3, 0, 1), (smaller.NumLabels, smaller.PadTokenId, smaller.NumHiddenLayers));
        Assert.Throws<ArgumentOutOfRangeException>(() => c.ForSequenceClassification(0));
        var e = Assert.Throws<ArgumentException>(() => LlamaConfig.Create(64, 32, 48, 2, 4, numLabels: 2, labelNames: ["a", "b", "c"]));
        Assert.Contains("3 label names for num_labels 2", e.Message, StringComparison.Ordinal);
    }
}
