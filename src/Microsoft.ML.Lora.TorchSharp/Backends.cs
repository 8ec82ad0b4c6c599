using System.Globalization;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>
/// Picks a <see cref="Backend"/> by name, as an app's <c>--backend</c> and <c>--device</c> options say:
/// <c>native</c> is the CPU engine (<see cref="Backend.Native"/>), <c>torch</c> is libtorch through
/// TorchSharp on <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>.
/// </summary>
public static class Backends
{
    /// <summary>The CPU engine's name.</summary>
    public const string NativeName = "native";

    /// <summary>The libtorch backend's name.</summary>
    public const string TorchName = "torch";

    /// <summary>
    /// The backend named by <paramref name="backend"/> (<c>native</c> or <c>torch</c>; null: <c>native</c>,
    /// or <c>torch</c> when the device is CUDA) on <paramref name="device"/> (<c>cpu</c>, <c>cuda</c> or
    /// <c>cuda:N</c>; null: <c>cpu</c>). <paramref name="bf16Compute"/> runs the torch backend's matrix
    /// products in BF16 (<see cref="TorchBackendOptions.Bf16Compute"/>).
    /// </summary>
    /// <exception cref="ArgumentException">an unknown name or device, a CUDA device or BF16 compute asked of the native backend.</exception>
    /// <exception cref="TorchBackendUnavailableException">libtorch's native library for the device is missing, or the CUDA device is not there.</exception>
    public static Backend Create(string? backend = null, string? device = null, bool bf16Compute = false)
    {
        string d = (device ?? "cpu").Trim().ToLowerInvariant();
        bool cuda = IsCuda(d);
        if (!cuda && d != "cpu")
        {
            throw new ArgumentException($"--device '{device}' is unknown: expected cpu, cuda or cuda:N (N = 0, 1, …)");
        }

        string name = backend?.Trim().ToLowerInvariant() ?? (cuda ? TorchName : NativeName);
        switch (name)
        {
            case NativeName when cuda:
                throw new ArgumentException($"--backend native runs on the CPU only, but --device is '{device}': use --backend torch for CUDA (or leave --backend out; a CUDA device implies torch)");
            case NativeName when bf16Compute:
                throw new ArgumentException("--bf16-compute is a setting of --backend torch; the native engine computes in its weights' dtype (use --dtype bf16 for BF16 weights)");
            case NativeName:
                return Backend.Native;
            case TorchName:
                return TorchBackend.Create(d, new TorchBackendOptions { Bf16Compute = bf16Compute });
            default:
                throw new ArgumentException($"--backend '{backend}' is unknown: expected {NativeName} or {TorchName}");
        }
    }

    // cuda or cuda:N, as TorchDevices.Parse reads it; checked here without touching libtorch, so the native
    // backend needs no TorchSharp at run time.
    private static bool IsCuda(string device) =>
        device == "cuda" || (device.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(device.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out _));
}
