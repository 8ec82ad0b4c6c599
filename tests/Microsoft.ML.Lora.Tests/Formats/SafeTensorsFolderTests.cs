using System.Text.Json;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Formats;

public class SafeTensorsFolderTests
{
    private static SafeTensorEntry[] Weights(int n) =>
        Enumerable.Range(0, n).Select(i => SafeTensorEntry.FromFloats($"model.layers.{i}.w", [4], [i, i + 1, i + 2, i + 3])).ToArray();

    [Fact]
    public void SingleFileFolderRoundTrips()
    {
        using var dir = new TempDir();
        var written = SafeTensorsWriter.WriteModel(dir.Path, Weights(3));
        Assert.Equal([SafeTensorsFolder.SingleFileName], written);
        Assert.False(File.Exists(dir.File(SafeTensorsFolder.IndexFileName)));

        using var folder = SafeTensorsFolder.Open(dir.Path);
        Assert.Equal(["model.layers.0.w", "model.layers.1.w", "model.layers.2.w"], folder.Names);
        Assert.Single(folder.Files);
        Assert.Equal([2f, 3, 4, 5], folder.ReadFloats("model.layers.2.w"));
        Assert.Equal("pt", folder.Metadata["format"]);
    }

    [Fact]
    public void ShardedFolderRoundTripsWithIndex()
    {
        using var dir = new TempDir();

        // 16 bytes per tensor, at most 40 per shard: shards of 2, 2, 1 tensors.
        var written = SafeTensorsWriter.WriteModel(dir.Path, Weights(5), maxShardBytes: 40, metadata: new Dictionary<string, string> { ["origin"] = "test" });
        Assert.Equal(
            ["model-00001-of-00003.safetensors", "model-00002-of-00003.safetensors", "model-00003-of-00003.safetensors", SafeTensorsFolder.IndexFileName],
            written);

        using (var index = JsonDocument.Parse(File.ReadAllText(dir.File(SafeTensorsFolder.IndexFileName))))
        {
            Assert.Equal(80, index.RootElement.GetProperty("metadata").GetProperty("total_size").GetInt64());
            var map = index.RootElement.GetProperty("weight_map");
            Assert.Equal("model-00001-of-00003.safetensors", map.GetProperty("model.layers.1.w").GetString());
            Assert.Equal("model-00003-of-00003.safetensors", map.GetProperty("model.layers.4.w").GetString());
        }

        using var folder = SafeTensorsFolder.Open(dir.Path);
        Assert.Equal(3, folder.Files.Count);
        Assert.Equal(5, folder.Names.Count);
        for (int i = 0; i < 5; i++)
        {
            using var t = folder.Read($"model.layers.{i}.w", DType.BF16, [4]);
            Assert.Equal(new float[] { i, i + 1, i + 2, i + 3 }, t.ToFloatArray());
        }

        Assert.Equal("80", folder.Metadata["total_size"]);
        Assert.Equal("test", folder.Metadata["origin"]);
        Assert.EndsWith("model-00002-of-00003.safetensors", folder.FileOf("model.layers.3.w").Path);
    }

    [Fact]
    public void TensorLargerThanTheShardLimitGetsItsOwnShard()
    {
        using var dir = new TempDir();
        var written = SafeTensorsWriter.WriteModel(dir.Path, [SafeTensorEntry.FromFloats("big", [100], new float[100]), SafeTensorEntry.FromFloats("small", [1], [1])], maxShardBytes: 8);
        Assert.Equal(3, written.Count);
        using var folder = SafeTensorsFolder.Open(dir.Path);
        Assert.Equal(100, folder.Info("big").ElementCount);
    }

    [Fact]
    public void RewritingSwitchesLayoutAndRemovesStaleWeights()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, Weights(5), maxShardBytes: 40);
        SafeTensorsWriter.WriteModel(dir.Path, Weights(1));
        Assert.Equal([SafeTensorsFolder.SingleFileName], Directory.GetFiles(dir.Path).Select(Path.GetFileName));

        SafeTensorsWriter.WriteModel(dir.Path, Weights(4), maxShardBytes: 16);
        Assert.False(File.Exists(dir.File(SafeTensorsFolder.SingleFileName)));
        using var folder = SafeTensorsFolder.Open(dir.Path);
        Assert.Equal(4, folder.Names.Count);
        Assert.Equal(5, Directory.GetFiles(dir.Path).Length);
    }

    [Fact]
    public void MissingTensorNamesFolderTensorAndHint()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, Weights(2), maxShardBytes: 16);
        using var folder = SafeTensorsFolder.Open(dir.Path);
        var e = Assert.Throws<InvalidDataException>(() => folder.Read("model.layers.3.mlp.up_proj.weight", DType.F32));
        Assert.Contains("tensor 'model.layers.3.mlp.up_proj.weight' missing in " + dir.Path, e.Message);
        Assert.Contains("another architecture", e.Message);
        Assert.False(folder.Contains("model.layers.3.mlp.up_proj.weight"));
    }

    [Fact]
    public void MissingTensorSuggestsThePrefixVariant()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, [SafeTensorEntry.FromFloats("layers.0.w", [1], [1])]);
        using var folder = SafeTensorsFolder.Open(dir.Path);
        var e = Assert.Throws<InvalidDataException>(() => folder.Info("model.layers.0.w"));
        Assert.Contains("it has 'layers.0.w'", e.Message);
    }

    [Fact]
    public void MissingShardNamesIndexAndShard()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, Weights(4), maxShardBytes: 16);
        File.Delete(dir.File("model-00003-of-00004.safetensors"));
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFolder.Open(dir.Path));
        Assert.Contains(dir.File(SafeTensorsFolder.IndexFileName), e.Message);
        Assert.Contains("shard 'model-00003-of-00004.safetensors'", e.Message);
        Assert.Contains("model.layers.2.w", e.Message);
    }

    [Fact]
    public void TensorMissingFromItsShard()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, Weights(2), maxShardBytes: 16);
        string indexPath = dir.File(SafeTensorsFolder.IndexFileName);
        File.WriteAllText(indexPath, File.ReadAllText(indexPath).Replace("\"model.layers.1.w\": \"model-00002", "\"model.layers.1.w\": \"model-00001"));
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFolder.Open(dir.Path));
        Assert.Contains("tensor 'model.layers.1.w' is mapped to", e.Message);
        Assert.Contains("model-00001-of-00002.safetensors", e.Message);
    }

    [Theory]
    [InlineData("""{"weight_map": {"a": "../outside.safetensors"}}""", "expected a file name inside the model folder")]
    [InlineData("""{"weight_map": {"a": "/etc/passwd"}}""", "expected a file name inside the model folder")]
    [InlineData("""{"weight_map": {"a": 3}}""", "is a JSON Number")]
    [InlineData("""{"metadata": {}}""", "'weight_map' is missing")]
    [InlineData("""{"metadata": 5, "weight_map": {}}""", "'metadata' is a JSON Number")]
    [InlineData("""{"weight_map": {"a": "x", "a": "y"}}""", "not valid JSON")]
    [InlineData("""{"weight_map": """, "not valid JSON")]
    [InlineData("[]", "expected an object")]
    public void MalformedIndex(string json, string expected)
    {
        using var dir = new TempDir();
        string indexPath = dir.File(SafeTensorsFolder.IndexFileName);
        File.WriteAllText(indexPath, json);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFolder.Open(dir.Path));
        Assert.Contains(indexPath, e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Fact]
    public void FolderWithoutWeights()
    {
        using var dir = new TempDir();
        var e = Assert.Throws<FileNotFoundException>(() => SafeTensorsFolder.Open(dir.Path));
        Assert.Contains(dir.Path, e.Message);
        Assert.Throws<DirectoryNotFoundException>(() => SafeTensorsFolder.Open(dir.File("absent")));
    }

    [Fact]
    public void CorruptShardNamesTheShard()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, Weights(2), maxShardBytes: 16);
        string shard = dir.File("model-00002-of-00002.safetensors");
        File.WriteAllBytes(shard, File.ReadAllBytes(shard)[..^2]);
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFolder.Open(dir.Path));
        Assert.Contains(shard, e.Message);
        Assert.Contains("model.layers.1.w", e.Message);
    }
}
