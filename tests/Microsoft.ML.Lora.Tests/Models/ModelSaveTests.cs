using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.Tests.Lora;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>Saving a model as a Hugging Face folder and loading it back.</summary>
public sealed class ModelSaveTests : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-save-" + Guid.NewGuid().ToString("N"));

    [Theory]
    [InlineData("llama_gqa")]
    [InlineData("qwen2_bias")]
    public void SavedFolderLoadsToTheSameModel(string name)
    {
        var batch = CausalLmBatch.FromRows([[1, 5, 9, 2, 7], [3, 3, 8]]);
        using var model = LlamaForCausalLM.Load(FixturePaths.Case(name));
        string dir = Path.Combine(root, name);
        model.Save(dir);
        using var again = LlamaForCausalLM.Load(dir);
        Assert.Equal(model.Config, again.Config);
        Assert.Equal(LoraAdapterTests.Logits(model, batch), LoraAdapterTests.Logits(again, batch));
        using var folder = SafeTensorsFolder.Open(dir);
        Assert.Equal(model.Parameters().Select(p => p.Name).Order(), folder.Names.Order());

        string bf16Dir = Path.Combine(root, name + "-bf16");
        model.Save(bf16Dir, DType.BF16);
        using var viaBf16 = LlamaForCausalLM.Load(bf16Dir);
        using var loadedAsBf16 = LlamaForCausalLM.Load(FixturePaths.Case(name), DType.BF16);
        Assert.Equal(LoraAdapterTests.Logits(loadedAsBf16, batch), LoraAdapterTests.Logits(viaBf16, batch));
        Assert.Contains("\"torch_dtype\": \"bfloat16\"", File.ReadAllText(Path.Combine(bf16Dir, "config.json")), StringComparison.Ordinal);
    }

    [Fact]
    public void RefusesANonEmptyFolderAndLeavesNothingBehind()
    {
        using var model = LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"));
        string dir = Path.Combine(root, "taken");
        Directory.CreateDirectory(dir);
        File.WriteAllText(Path.Combine(dir, "keep.txt"), "mine");
        var e = Assert.Throws<IOException>(() => model.Save(dir));
        Assert.Contains(dir, e.Message, StringComparison.Ordinal);
        Assert.Equal(["keep.txt"], Directory.GetFileSystemEntries(dir).Select(Path.GetFileName));
        Assert.Equal(["taken"], Directory.GetFileSystemEntries(root).Select(Path.GetFileName));
    }

    public void Dispose()
    {
        if (Directory.Exists(root))
        {
            Directory.Delete(root, recursive: true);
        }
    }
}
