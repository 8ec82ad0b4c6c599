using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>A model folder saved as shards + model.safetensors.index.json loads to the same model.</summary>
public sealed class ShardedModelTests
{
    [Fact]
    public void ShardedFolderGivesBitIdenticalLoss()
    {
        string source = FixturePaths.Case("qwen2_bias");
        string dir = Path.Combine(Path.GetTempPath(), "lora-sharded-" + Guid.NewGuid().ToString("N"));
        try
        {
            using (var single = SafeTensorsFile.Open(Path.Combine(source, "model.safetensors")))
            {
                var entries = single.Tensors.Keys.Select(k => SafeTensorEntry.FromFloats(k, single.Info(k).Shape, single.ReadFloats(k))).ToList();
                var written = SafeTensorsWriter.WriteModel(dir, entries, maxShardBytes: 16 * 1024);
                Assert.Contains(SafeTensorsFolder.IndexFileName, written.Select(Path.GetFileName));
            }

            Assert.False(File.Exists(Path.Combine(dir, SafeTensorsFolder.SingleFileName)));
            Assert.True(Directory.GetFiles(dir, "model-*-of-*.safetensors").Length > 2);
            File.Copy(Path.Combine(source, "config.json"), Path.Combine(dir, "config.json"));

            using var expected = SafeTensorsFile.Open(Path.Combine(source, "expected.safetensors"));
            var batch = ReferenceModelTests.BatchOf(expected);
            using var fromSingle = LlamaForCausalLM.Load(source);
            using var fromShards = LlamaForCausalLM.Load(dir);
            Assert.Equal(fromSingle.Forward(batch), fromShards.Forward(batch));
        }
        finally
        {
            if (Directory.Exists(dir))
            {
                Directory.Delete(dir, recursive: true);
            }
        }
    }
}
