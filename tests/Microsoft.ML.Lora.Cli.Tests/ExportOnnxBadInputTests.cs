using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora export-onnx</c> refuses what would write a wrong file, names why, and writes nothing.</summary>
public sealed class ExportOnnxBadInputTests
{
    private static readonly string Model = FixturePaths.Case("llama_gqa");

    [Theory]
    [InlineData("0")]
    [InlineData("-1")]
    [InlineData("16")]
    public void AnInt4BlockOtherThan32Or64IsRefused(string block)
    {
        using var tmp = new TempDir();
        string onnx = Path.Combine(tmp.Path, "m.onnx");
        var (exit, _, error) = CliRunner.Run("export-onnx", "--model", Model, "--out", onnx, "--int4", "--int4-block", block);
        Assert.Equal(1, exit);
        Assert.Contains($"--int4-block must be 32 or 64; got {block}", error, StringComparison.Ordinal);
        Assert.Empty(Directory.GetFileSystemEntries(tmp.Path));
    }

    [Fact]
    public void MissingParentFoldersAreMade()
    {
        using var tmp = new TempDir();
        string nested = Path.Combine(tmp.Path, "new", "deeper", "model.onnx");
        var (exit, _, error) = CliRunner.Run("export-onnx", "--model", Model, "--out", nested);
        Assert.True(exit == 0, error);
        Assert.True(new FileInfo(nested).Length > 10_000);

    }

    [Fact]
    public void AnAdapterThatMakesAWeightNaNIsRefusedNamingTheModule()
    {
        using var tmp = new TempDir();
        string adapter = Path.Combine(tmp.Path, "nan-adapter"), onnx = Path.Combine(tmp.Path, "m.onnx");
        Directory.CreateDirectory(adapter);
        string reference = FixturePaths.Case("peft_llama_gqa");
        File.Copy(Path.Combine(reference, "adapter_config.json"), Path.Combine(adapter, "adapter_config.json"));
        const string poisoned = "base_model.model.model.layers.1.mlp.down_proj.lora_B.weight";
        using (var weights = SafeTensorsFile.Open(Path.Combine(reference, "adapter_model.safetensors")))
        {
            var entries = weights.Tensors.Values.Select(t =>
            {
                byte[] bytes = weights.GetBytes(t.Name).ToArray();
                if (t.Name == poisoned)
                {
                    BitConverter.GetBytes(float.NaN).CopyTo(bytes, 4 * 5);
                }

                return SafeTensorEntry.FromBytes(t.Name, t.DType, t.Shape, bytes);
            }).ToList();
            SafeTensorsWriter.Write(Path.Combine(adapter, "adapter_model.safetensors"), entries);
        }

        var (exit, _, error) = CliRunner.Run("export-onnx", "--model", Model, "--adapter", adapter, "--out", onnx);
        Assert.Equal(1, exit);
        Assert.Contains("model.layers.1.mlp.down_proj", error, StringComparison.Ordinal);
        Assert.Contains("non-finite", error, StringComparison.Ordinal);
        Assert.False(File.Exists(onnx));
        Assert.Equal(["nan-adapter"], Directory.GetFileSystemEntries(tmp.Path).Select(Path.GetFileName));
    }
}
