using System.Text.Json;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>Every attribute encoding, each on an op that uses it, read back by the onnx 1.12 checker.</summary>
public sealed class OnnxAttributeTests
{
    // AttributeProto.AttributeType numbers from onnx.proto.
    private const int Float = 1, Int = 2, String = 3, Tensor = 4, Floats = 6, Ints = 7;

    [Fact]
    public void AllAttributeKinds_RoundTripThroughChecker()
    {
        var graph = new OnnxGraph("attrs");
        graph.AddInput("X", OnnxElementType.Float, "batch", 3);
        graph.AddInitializer("W", [4, 3], Enumerable.Range(0, 12).Select(i => (float)i).ToArray());
        graph.AddInitializer("pads", [4], new long[] { 0, 1, 0, 1 });
        graph.AddNode("Constant", [], ["c_tensor"], attributes: OnnxAttribute.Tensor("value", OnnxTensor.FromFloats("", [2], [0.5f, 2f])));
        graph.AddNode("Constant", [], ["c_floats"], attributes: OnnxAttribute.Floats("value_floats", 1.5f, -2.25f));
        graph.AddNode("Constant", [], ["c_ints"], attributes: OnnxAttribute.Ints("value_ints", 0, 1, -3));
        graph.AddNode("Constant", [], ["c_float"], attributes: OnnxAttribute.Float("value_float", 0.75f));
        graph.AddNode("Constant", [], ["c_int"], attributes: OnnxAttribute.Int("value_int", -7));
        graph.AddNode("Transpose", ["X"], ["Xt"], attributes: OnnxAttribute.Ints("perm", 1, 0));
        graph.AddNode("Gemm", ["X", "W"], ["G"], name: "gemm", attributes: [OnnxAttribute.Float("alpha", 0.5f), OnnxAttribute.Int("transB", 1)]);
        graph.AddNode("Pad", ["X", "pads"], ["P"], attributes: OnnxAttribute.String("mode", "reflect"));
        graph.AddOutput("c_tensor", OnnxElementType.Float, 2);
        graph.AddOutput("c_floats", OnnxElementType.Float, 2);
        graph.AddOutput("c_ints", OnnxElementType.Int64, 3);
        graph.AddOutput("c_float", OnnxElementType.Float);
        graph.AddOutput("c_int", OnnxElementType.Int64);
        graph.AddOutput("Xt", OnnxElementType.Float, 3, "batch");
        graph.AddOutput("G", OnnxElementType.Float, "batch", 4);
        graph.AddOutput("P", OnnxElementType.Float, "batch", 5);

        using var temp = new TempFolder();
        string path = temp.File("attrs.onnx");
        OnnxModelWriter.Save(graph, path, new OnnxSaveOptions());
        JsonElement[] nodes = OnnxChecker.Check(path).GetProperty("nodes").EnumerateArray().ToArray();

        JsonElement tensor = Attr(nodes[0], "value", Tensor);
        Assert.Equal(1, tensor.GetProperty("data_type").GetInt32());
        Assert.Equal([0.5, 2.0], Doubles(tensor.GetProperty("values")));
        Assert.Equal([1.5, -2.25], Doubles(Attr(nodes[1], "value_floats", Floats)));
        Assert.Equal([0.0, 1.0, -3.0], Doubles(Attr(nodes[2], "value_ints", Ints)));
        Assert.Equal(0.75, Attr(nodes[3], "value_float", Float).GetDouble());
        Assert.Equal(-7, Attr(nodes[4], "value_int", Int).GetInt64());
        Assert.Equal([1.0, 0.0], Doubles(Attr(nodes[5], "perm", Ints)));
        Assert.Equal("gemm", nodes[6].GetProperty("name").GetString());
        Assert.Equal(0.5, Attr(nodes[6], "alpha", Float).GetDouble());
        Assert.Equal(1, Attr(nodes[6], "transB", Int).GetInt64());
        Assert.Equal("reflect", Attr(nodes[7], "mode", String).GetString());
    }

    [Fact]
    public void CustomDomainNode_IsWrittenWithItsDomain()
    {
        var graph = new OnnxGraph();
        graph.AddInput("X", OnnxElementType.Float, "batch", 8);
        graph.AddNode("FastGelu", ["X"], ["Y"], domain: "com.microsoft");
        graph.AddOutput("Y", OnnxElementType.Float, "batch", 8);

        using var temp = new TempFolder();
        string path = temp.File("ms.onnx");
        OnnxModelWriter.Save(graph, path, new OnnxSaveOptions { ExtraOpsets = [("com.microsoft", 1)] });
        JsonElement summary = OnnxChecker.Check(path);
        Assert.Equal("com.microsoft", summary.GetProperty("nodes")[0].GetProperty("domain").GetString());
        Assert.Equal(1, summary.GetProperty("opsets").GetProperty("com.microsoft").GetInt32());
    }

    private static JsonElement Attr(JsonElement node, string name, int type)
    {
        JsonElement attribute = node.GetProperty("attributes").GetProperty(name);
        Assert.Equal(type, attribute.GetProperty("type").GetInt32());
        return attribute.GetProperty("value");
    }

    private static double[] Doubles(JsonElement array) => array.EnumerateArray().Select(v => v.GetDouble()).ToArray();
}
