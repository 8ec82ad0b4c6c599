using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>Builder validation: mistakes are reported where they are made, naming the value.</summary>
public sealed class OnnxGraphTests
{
    [Fact]
    public void NodeReadingUndefinedValue_Throws()
    {
        var graph = new OnnxGraph();
        graph.AddInput("X", OnnxElementType.Float, "batch", 3);
        var e = Assert.Throws<ArgumentException>(() => graph.AddNode("MatMul", ["X", "W"], ["Y"]));
        Assert.Contains("'W'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void RemoveUnusedInitializers_KeepsWhatNodesOutputsAndInputsRead()
    {
        var graph = new OnnxGraph();
        graph.AddInput("X", OnnxElementType.Float, "batch", 2);
        graph.AddInput(OnnxTensor.FromFloats("D", [2], [0f, 0f]), 2);
        graph.AddInitializer("W", [2, 2], [1f, 0f, 0f, 1f]);
        graph.AddInitializer("Unused", [1], [3f]);
        graph.AddInitializer("Direct", [1], [4f]);
        graph.AddNode("MatMul", ["X", "W"], ["Y"]);
        graph.AddOutput("Y", OnnxElementType.Float, "batch", 2);
        graph.AddOutput("Direct", OnnxElementType.Float, 1);

        Assert.Equal(1, graph.RemoveUnusedInitializers());
        Assert.Equal(["D", "W", "Direct"], graph.Initializers.Select(static t => t.Name));
        graph.AddInitializer("Unused", [1], [5f]);
    }

    [Fact]
    public void DuplicateName_Throws()
    {
        var graph = new OnnxGraph();
        graph.AddInput("X", OnnxElementType.Float, 3);
        var e = Assert.Throws<ArgumentException>(() => graph.AddInitializer("X", [1], [1f]));
        Assert.Contains("'X'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InitializerWithWrongByteCount_Throws()
    {
        var graph = new OnnxGraph();
        var e = Assert.Throws<ArgumentException>(() => graph.AddInitializer("W", OnnxElementType.Float, [2, 2], new byte[15]));
        Assert.Contains("needs 16", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void UnproducedOutput_FailsAtSave()
    {
        var graph = new OnnxGraph();
        graph.AddInput("X", OnnxElementType.Float, 3);
        graph.AddOutput("Y", OnnxElementType.Float, 3);
        using var temp = new TempFolder();
        var e = Assert.Throws<InvalidOperationException>(() => OnnxModelWriter.Save(graph, temp.File("m.onnx"), new OnnxSaveOptions()));
        Assert.Contains("'Y'", e.Message, StringComparison.Ordinal);
        Assert.Empty(temp.Entries());
    }

    [Fact]
    public void NegativeFixedDim_Throws() =>
        Assert.Throws<ArgumentOutOfRangeException>(() => new OnnxGraph().AddInput("X", OnnxElementType.Float, -1));

    [Fact]
    public void FoldersMadeForASaveThatFailsAreRemovedAgain()
    {
        var graph = new OnnxGraph("cancelled");
        graph.AddInput("X", OnnxElementType.Float, 2);
        graph.AddInitializer("W", [2], [1f, 2f]);
        graph.AddNode("Add", ["X", "W"], ["Y"]);
        graph.AddOutput("Y", OnnxElementType.Float, 2);
        using var temp = new TempFolder();
        string root = temp.File("made");
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => OnnxModelWriter.Save(graph, Path.Combine(root, "sub", "m.onnx"), new OnnxSaveOptions(), cancelled.Token));
        Assert.False(Directory.Exists(root));

        OnnxModelWriter.Save(graph, Path.Combine(root, "sub", "m.onnx"), new OnnxSaveOptions());
        Assert.True(File.Exists(Path.Combine(root, "sub", "m.onnx")));
    }
}
