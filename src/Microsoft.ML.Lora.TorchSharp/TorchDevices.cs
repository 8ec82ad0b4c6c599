using System.Globalization;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>Device names and libtorch's native library.</summary>
public static class TorchDevices
{
    /// <summary>Parses <c>cpu</c>, <c>cuda</c> or <c>cuda:N</c> (index −1 for plain <c>cuda</c> and <c>cpu</c>).</summary>
    public static (DeviceType Type, int Index) Parse(string device)
    {
        string d = device.Trim().ToLowerInvariant();
        if (d == "cpu")
        {
            return (DeviceType.CPU, -1);
        }

        if (d == "cuda")
        {
            return (DeviceType.CUDA, -1);
        }

        if (d.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(d.AsSpan(5), NumberStyles.None, CultureInfo.InvariantCulture, out int index))
        {
            return (DeviceType.CUDA, index);
        }

        throw new ArgumentException($"unknown device '{device}': expected cpu, cuda or cuda:N", nameof(device));
    }

    /// <summary>Loads libtorch's native library for <paramref name="type"/>, or throws naming the package to add.</summary>
    public static void EnsureLoaded(DeviceType type)
    {
        try
        {
            torch.InitializeDeviceType(type == DeviceType.CUDA ? DeviceType.CUDA : DeviceType.CPU);
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            string package = type == DeviceType.CUDA
                ? "TorchSharp-cuda-linux (Linux) or TorchSharp-cuda-windows (Windows)"
                : "TorchSharp-cpu (or a CUDA bundle, which also runs on the CPU)";
            throw new TorchBackendUnavailableException(
                $"the torch backend needs libtorch's native library for {(type == DeviceType.CUDA ? "CUDA" : "the CPU")}, which could not be loaded: add the package {package} to the app. On Debian 12 / Ubuntu 22.04 (libstdc++ older than 13) build with this repository's TorchSharp targets, which patch libLibTorchSharp.so's GLIBCXX_3.4.32 need (docs/torchsharp.md). libtorch said: {e.Message}",
                e);
        }
    }

    /// <summary>CUDA devices libtorch sees (0 when CUDA is unavailable).</summary>
    public static int CudaDeviceCount()
    {
        try
        {
            return torch.cuda.is_available() ? torch.cuda.device_count() : 0;
        }
        catch (Exception e) when (e is not OutOfMemoryException)
        {
            return 0;
        }
    }
}
