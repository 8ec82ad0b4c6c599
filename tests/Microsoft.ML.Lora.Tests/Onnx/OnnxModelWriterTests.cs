using System.Text.Json;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>Saves small graphs and checks them with the independent onnx 1.12 checker (tests/reference/onnx/check_onnx.py).</summary>
public sealed class OnnxModelWriterTests
{
    // Sums of a few float32 values printed back through float64: exact to well under 1e-6.
    private const double SumTolerance = 1e-6;

    private static readonly float[] Weights = Enumerable.Range(0, 12).Select(i => i * 0.25f - 1f).ToArray();
    private static readonly float[] Bias = [0.5f, -0.5f, 1.5f, -2f];
    private static readonly long[] ReshapeTo = [-1, 4];

    /// <summary>Z (batch,4) = Reshape(Relu(X (batch,3) · W (3,4) + B (4)), [-1, 4]).</summary>
    private static OnnxGraph TinyGraph()
    {
        var graph = new OnnxGraph("tiny");
        graph.AddInput("X", OnnxElementType.Float, "batch", 3);
        graph.AddInitializer("W", [3, 4], Weights);
        graph.AddInitializer("B", [4], Bias);
        graph.AddInitializer("shape", [2], ReshapeTo);
        graph.AddNode("MatMul", ["X", "W"], ["XW"]);
        graph.AddNode("Add", ["XW", "B"], ["Y"], name: "add_bias");
        graph.AddNode("Relu", ["Y"], ["R"]);
        graph.AddNode("Reshape", ["R", "shape"], ["Z"]);
        graph.AddOutput("Z", OnnxElementType.Float, "batch", 4);
        return graph;
    }

    private static void AssertTinySummary(JsonElement summary)
    {
        Assert.Equal(8, summary.GetProperty("ir_version").GetInt32());
        Assert.Equal("Microsoft.ML.Lora", summary.GetProperty("producer_name").GetString());
        Assert.Equal(17, summary.GetProperty("opsets").GetProperty("").GetInt32());
        Assert.Equal("tiny", summary.GetProperty("graph_name").GetString());
        Assert.Equal(
            ["MatMul", "Add", "Relu", "Reshape"],
            summary.GetProperty("nodes").EnumerateArray().Select(n => n.GetProperty("op_type").GetString()!));
        JsonElement add = summary.GetProperty("nodes")[1];
        Assert.Equal("add_bias", add.GetProperty("name").GetString());
        Assert.Equal(["XW", "B"], add.GetProperty("inputs").EnumerateArray().Select(e => e.GetString()!));
        Assert.Equal(["Y"], add.GetProperty("outputs").EnumerateArray().Select(e => e.GetString()!));

        JsonElement input = Assert.Single(summary.GetProperty("inputs").EnumerateArray());
        Assert.Equal("X", input.GetProperty("name").GetString());
        Assert.Equal(1, input.GetProperty("elem_type").GetInt32());
        Assert.Equal("batch", input.GetProperty("shape")[0].GetString());
        Assert.Equal(3, input.GetProperty("shape")[1].GetInt64());
        JsonElement output = Assert.Single(summary.GetProperty("outputs").EnumerateArray());
        Assert.Equal("Z", output.GetProperty("name").GetString());
        Assert.Equal("batch", output.GetProperty("shape")[0].GetString());
        Assert.Equal(4, output.GetProperty("shape")[1].GetInt64());

        JsonElement[] inits = summary.GetProperty("initializers").EnumerateArray().ToArray();
        Assert.Equal(["W", "B", "shape"], inits.Select(i => i.GetProperty("name").GetString()!));
        Assert.Equal([3L, 4L], inits[0].GetProperty("dims").EnumerateArray().Select(d => d.GetInt64()));
        Assert.Equal([1, 1, 7], inits.Select(i => i.GetProperty("data_type").GetInt32()));
        Assert.Equal(Weights.Sum(w => (double)w), inits[0].GetProperty("sum").GetDouble(), SumTolerance);
        Assert.Equal(Weights.Select(w => (double)w), inits[0].GetProperty("values").EnumerateArray().Select(v => v.GetDouble()));
        Assert.Equal(Bias.Sum(b => (double)b), inits[1].GetProperty("sum").GetDouble(), SumTolerance);
        Assert.Equal([-1.0, 4.0], inits[2].GetProperty("values").EnumerateArray().Select(v => v.GetDouble()));
    }

    [Fact]
    public void Inline_TinyGraph_PassesCheckerAndMatchesWhatWasBuilt()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.onnx");
        OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions { Metadata = new Dictionary<string, string> { ["lora.rank"] = "8" } });

        JsonElement summary = OnnxChecker.Check(path);
        AssertTinySummary(summary);
        Assert.Equal("8", summary.GetProperty("metadata").GetProperty("lora.rank").GetString());
        Assert.All(summary.GetProperty("initializers").EnumerateArray(), i => Assert.Equal(JsonValueKind.Null, i.GetProperty("external").ValueKind));
        Assert.Equal(["tiny.onnx"], temp.Entries());
    }

    [Fact]
    public void ExternalData_LargeInitializersGoToDataFileAtAlignedOffsets()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.onnx");

        // W is 48 bytes, B and shape 16: threshold 16 sends W and B out, each on its own 4096-byte boundary;
        // shape is an int64 shape tensor and stays inline (OnnxModelWriter.InlineShapeTensorMaxElements).
        OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions { ExternalData = true, ExternalDataThreshold = 16, ExtraOpsets = [("com.microsoft", 1)] });

        JsonElement summary = OnnxChecker.Check(path);
        AssertTinySummary(summary);
        Assert.Equal(1, summary.GetProperty("opsets").GetProperty("com.microsoft").GetInt32());
        JsonElement[] inits = summary.GetProperty("initializers").EnumerateArray().ToArray();
        Assert.Equal([0L, 4096L], inits[..2].Select(i => i.GetProperty("external").GetProperty("offset").GetInt64()));
        Assert.Equal([48L, 16L], inits[..2].Select(i => i.GetProperty("external").GetProperty("length").GetInt64()));
        Assert.All(inits[..2], i => Assert.Equal("tiny.onnx.data", i.GetProperty("external").GetProperty("location").GetString()));
        Assert.Equal(JsonValueKind.Null, inits[2].GetProperty("external").ValueKind);
        Assert.Equal(4096 + 16, new FileInfo(temp.File("tiny.onnx.data")).Length);
        Assert.Equal(["tiny.onnx", "tiny.onnx.data"], temp.Entries());
    }

    [Fact]
    public void ExternalData_ThresholdKeepsSmallInitializersInline()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.onnx");
        OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions { ExternalData = true, ExternalDataThreshold = 17 });

        JsonElement summary = OnnxChecker.Check(path);
        AssertTinySummary(summary);
        JsonElement[] inits = summary.GetProperty("initializers").EnumerateArray().ToArray();
        Assert.Equal(0, inits[0].GetProperty("external").GetProperty("offset").GetInt64());
        Assert.Equal(JsonValueKind.Null, inits[1].GetProperty("external").ValueKind);
        Assert.Equal(JsonValueKind.Null, inits[2].GetProperty("external").ValueKind);
        Assert.Equal(48, new FileInfo(temp.File("tiny.onnx.data")).Length);
    }

    [Fact]
    public void ModelOverInlineLimit_SwitchesToExternalDataAutomatically()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.onnx");

        // The real limit is 2 GiB; the internal hook lowers it so a tiny model crosses it.
        OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions { InlineLimitBytes = 100, ExternalDataThreshold = 48 });

        JsonElement summary = OnnxChecker.Check(path);
        AssertTinySummary(summary);
        JsonElement[] inits = summary.GetProperty("initializers").EnumerateArray().ToArray();
        Assert.Equal(48, inits[0].GetProperty("external").GetProperty("length").GetInt64());
        Assert.Equal(JsonValueKind.Null, inits[1].GetProperty("external").ValueKind);
        Assert.True(File.Exists(temp.File("tiny.onnx.data")));
    }

    [Fact]
    public void Float16Initializer_RoundTripsThroughChecker()
    {
        using var temp = new TempFolder();
        string path = temp.File("half.onnx");
        Half[] values = [(Half)1.5f, (Half)(-0.25f), (Half)2f, (Half)0.125f];
        var graph = new OnnxGraph();
        graph.AddInput("X", OnnxElementType.Float16, "batch", 2);
        graph.AddInitializer("W16", [2, 2], values);
        graph.AddNode("MatMul", ["X", "W16"], ["Y"]);
        graph.AddNode("Cast", ["Y"], ["Y32"], attributes: OnnxAttribute.Int("to", (long)OnnxElementType.Float));
        graph.AddOutput("Y32", OnnxElementType.Float, "batch", 2);
        OnnxModelWriter.Save(graph, path, new OnnxSaveOptions());

        JsonElement summary = OnnxChecker.Check(path);
        JsonElement w = Assert.Single(summary.GetProperty("initializers").EnumerateArray());
        Assert.Equal(10, w.GetProperty("data_type").GetInt32());
        Assert.Equal([1.5, -0.25, 2.0, 0.125], w.GetProperty("values").EnumerateArray().Select(v => v.GetDouble()));
        Assert.Equal(10, summary.GetProperty("inputs")[0].GetProperty("elem_type").GetInt32());
    }

    [Fact]
    public void SaveUnderARegularFile_ThrowsIOExceptionNamingPath_AndLeavesNothing()
    {
        using var temp = new TempFolder();
        string blocker = temp.File("not-a-folder");
        File.WriteAllText(blocker, "x");
        string path = Path.Combine(blocker, "model.onnx");

        IOException e = Assert.ThrowsAny<IOException>(() => OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions { ExternalData = true, ExternalDataThreshold = 16 }));
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
        Assert.Equal(["not-a-folder"], temp.Entries());
    }

    [Fact]
    public void SaveOverExistingModel_ReplacesItAndLeavesNoTempFiles()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.onnx");
        File.WriteAllText(path, "stale");
        OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions { ExternalData = true, ExternalDataThreshold = 16 });

        AssertTinySummary(OnnxChecker.Check(path));
        Assert.Equal(["tiny.onnx", "tiny.onnx.data"], temp.Entries());
    }

    [Fact]
    public void CancelledSave_ThrowsAndLeavesNothing()
    {
        using var temp = new TempFolder();
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() =>
            OnnxModelWriter.Save(TinyGraph(), temp.File("tiny.onnx"), new OnnxSaveOptions { ExternalData = true, ExternalDataThreshold = 16 }, cancelled.Token));
        Assert.Empty(temp.Entries());
    }

    [Fact]
    public void CorruptedFile_IsRejectedByChecker()
    {
        // Proves the checker path can fail: a truncated model must not pass.
        using var temp = new TempFolder();
        string path = temp.File("tiny.onnx");
        OnnxModelWriter.Save(TinyGraph(), path, new OnnxSaveOptions());
        byte[] bytes = File.ReadAllBytes(path);
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.NotEmpty(OnnxChecker.ExpectRejected(path));
    }
}
