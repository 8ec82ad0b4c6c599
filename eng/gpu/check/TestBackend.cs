using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.TorchSharp;

namespace Microsoft.ML.Lora.Tests;

/// <summary>
/// The backend the golden tests run on here: libtorch on the device named by <c>LORA_TEST_TORCH_DEVICE</c>
/// (<c>cpu</c>, <c>cuda</c>, <c>cuda:N</c>; default <c>cpu</c>), one instance for all tests, F32 compute
/// (the golden tolerances are F32's).
/// </summary>
internal static class TestBackend
{
    /// <summary>The variable naming the device.</summary>
    public const string DeviceVariable = "LORA_TEST_TORCH_DEVICE";

    private static readonly Lazy<Backend> Torch = new(() => TorchBackend.Create(DeviceName));

    /// <summary>The device asked for.</summary>
    public static string DeviceName => Environment.GetEnvironmentVariable(DeviceVariable) is { Length: > 0 } d ? d : "cpu";

    /// <summary>This run's backend.</summary>
    public static Backend Current => Torch.Value;

    /// <summary>The model moved to <see cref="Current"/>.</summary>
    public static LlamaForCausalLM OnTestBackend(this LlamaForCausalLM model) => model.To(Current);
}
