using System.Text;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>
/// Runs the hand-made models of tests/onnx/make_test_models.py (tests/fixtures/onnx) in ONNX Runtime .NET
/// and compares with values computed here.
/// </summary>
public class OnnxRuntimeCheckerTests
{
    private static string Model(string name) => Path.Combine(FixturePaths.Root, "onnx", name);

    // Weights of linear.onnx / gather.onnx, as make_test_models.py writes them.
    private static float W(int i, int j) => (4 * i + j + 1) / 8f - 0.75f;

    private static float B(int j) => j / 2f - 0.25f;

    private static float E(long r, int c) => 10 * r + c + 0.5f;

    private static float[] Linear(float[] x, int n)
    {
        var y = new float[n * 4];
        for (int r = 0; r < n; r++)
        {
            for (int j = 0; j < 4; j++)
            {
                double acc = 0;
                for (int i = 0; i < 3; i++)
                {
                    acc += (double)x[r * 3 + i] * W(i, j);
                }

                y[r * 4 + j] = (float)(acc + B(j));
            }
        }

        return y;
    }

    [Fact]
    public void OnnxRuntime_Linear_DyadicInputs_MatchExactly()
    {
        // Every product and partial sum is a short binary fraction, so any summation order is exact.
        float[] x = [1f, 2f, 3f, -0.5f, 0.25f, 0.125f];
        OnnxOutputs outputs = OnnxRuntimeChecker.Run(Model("linear.onnx"),
            new Dictionary<string, OnnxInput> { ["X"] = OnnxInput.Float32(x, 2, 3) });

        OnnxRuntimeTensor y = outputs["Y"];
        Assert.Equal("float32", y.Type);
        Assert.Equal([2, 4], y.Dims);
        Assert.Equal(Linear(x, 2), y.AsFloats());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    public void OnnxRuntime_Linear_SymbolicBatch_WithinTolerance(int batch)
    {
        // Tolerance: |ort - ref| <= 1e-6 * (1 + |ref|) (float32 sums of 3 products vs. a double reference).
        var rng = new Random(1234 + batch);
        float[] x = Enumerable.Range(0, batch * 3).Select(_ => (float)(rng.NextDouble() * 4 - 2)).ToArray();
        OnnxOutputs outputs = OnnxRuntimeChecker.Run(Model("linear.onnx"),
            new Dictionary<string, OnnxInput> { ["X"] = OnnxInput.Float32(x, batch, 3) });

        OnnxRuntimeTensor y = outputs["Y"];
        Assert.Equal([batch, 4], y.Dims);
        float[] want = Linear(x, batch);
        float[] got = y.AsFloats();
        Assert.Equal(want.Length, got.Length);
        for (int i = 0; i < want.Length; i++)
        {
            Assert.True(Math.Abs(got[i] - want[i]) <= 1e-6 * (1 + Math.Abs(want[i])), $"Y[{i}]: ort {got[i]:R}, C# {want[i]:R}");
        }
    }

    [Fact]
    public void OnnxRuntime_Gather_Int64Ids_EmbeddingsAndInt64Output()
    {
        long[] ids = [0, 4, 2, 3, 3, 1];
        OnnxOutputs outputs = OnnxRuntimeChecker.Run(Model("gather.onnx"),
            new Dictionary<string, OnnxInput> { ["ids"] = OnnxInput.Int64(ids, 2, 3) });

        OnnxRuntimeTensor emb = outputs["emb"];
        Assert.Equal([2, 3, 3], emb.Dims);
        float[] want = ids.SelectMany(r => Enumerable.Range(0, 3).Select(c => E(r, c))).ToArray();
        Assert.Equal(want, emb.AsFloats());

        OnnxRuntimeTensor next = outputs["next_ids"];
        Assert.Equal("int64", next.Type);
        Assert.Equal([2, 3], next.Dims);
        Assert.Equal(ids.Select(v => v + 1).ToArray(), next.AsLongs());
    }

    [Fact]
    public void OnnxRuntime_Cast_Float16Output_MatchesHalfRounding()
    {
        float[] x = [1.5f, 65504f, 70000f, 1e-4f, -0.333333f, 6e-8f];
        OnnxOutputs outputs = OnnxRuntimeChecker.Run(Model("half.onnx"),
            new Dictionary<string, OnnxInput> { ["X"] = OnnxInput.Float32(x, x.Length) });

        OnnxRuntimeTensor h = outputs["H"];
        Assert.Equal("float16", h.Type);
        Assert.Equal(x.Select(v => (float)(Half)v).ToArray(), h.AsFloats());
        Assert.True(float.IsPositiveInfinity(h.AsFloats()[2]));
    }

    [Fact]
    public void OnnxRuntime_Meta_NamesTimingsAndVersion()
    {
        OnnxOutputs outputs = OnnxRuntimeChecker.Run(Model("gather.onnx"),
            new Dictionary<string, OnnxInput> { ["ids"] = OnnxInput.Int64([1], 1, 1) });

        Assert.Equal(["ids"], outputs.InputNames);
        Assert.Equal(["emb", "next_ids"], outputs.OutputNames);
        Assert.Equal("1.32.0", outputs.OnnxRuntimeVersion);
        Assert.True(outputs.SessionMs > 0, $"session_ms {outputs.SessionMs}");
        Assert.True(outputs.RunMs >= 0, $"run_ms {outputs.RunMs}");
    }

    [Fact]
    public void OnnxRuntime_MalformedModel_ThrowsWithNodeError()
    {
        string path = Path.Combine(Path.GetTempPath(), $"lora-bad-{Guid.NewGuid():N}.onnx");
        File.WriteAllBytes(path, Encoding.ASCII.GetBytes("this is not a protobuf model"));
        try
        {
            var e = Assert.Throws<OnnxRuntimeCheckerException>(() => OnnxRuntimeChecker.Run(path,
                new Dictionary<string, OnnxInput> { ["X"] = OnnxInput.Float32([1f], 1) }));
            Assert.Contains($"{path}: cannot load model", e.Message);
            Assert.Contains("protobuf parsing failed", e.Message, StringComparison.OrdinalIgnoreCase);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void OnnxRuntime_WrongInputName_ThrowsNamingBoth()
    {
        var e = Assert.Throws<OnnxRuntimeCheckerException>(() => OnnxRuntimeChecker.Run(Model("linear.onnx"),
            new Dictionary<string, OnnxInput> { ["input_ids"] = OnnxInput.Int64([1, 2, 3], 1, 3) }));
        Assert.Contains("missing [X]", e.Message);
        Assert.Contains("unknown [input_ids]", e.Message);
    }

    [Fact]
    public void OnnxRuntime_MissingModel_Throws()
    {
        string path = Path.Combine(Path.GetTempPath(), $"lora-absent-{Guid.NewGuid():N}.onnx");
        var e = Assert.Throws<OnnxRuntimeCheckerException>(() => OnnxRuntimeChecker.Run(path,
            new Dictionary<string, OnnxInput> { ["X"] = OnnxInput.Float32([1f], 1) }));
        Assert.Contains($"{path}: model not found", e.Message);
    }
}
