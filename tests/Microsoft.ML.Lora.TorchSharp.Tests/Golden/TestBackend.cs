using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests;

/// <summary>The backend the shared golden tests run on in this project: libtorch on the CPU, one instance for all tests.</summary>
internal static class TestBackend
{
    private static readonly Lazy<Backend> Torch = new(() => Microsoft.ML.Lora.TorchSharp.TorchBackend.Create("cpu"));

    /// <summary>This project's backend.</summary>
    public static Backend Current => Torch.Value;

    /// <summary>The model moved to <see cref="Current"/>.</summary>
    public static LlamaForCausalLM OnTestBackend(this LlamaForCausalLM model) => model.To(Current);
}
