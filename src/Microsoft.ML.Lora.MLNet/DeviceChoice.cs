using System.Globalization;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.TorchSharp;
using Microsoft.ML.Runtime;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// The backend a step runs on: "cpu" is the native engine; "cuda" and "cuda:N" are libtorch through
/// TorchSharp (<see cref="Backends.Create"/>). Without a device in the options, ML.NET's own setting
/// decides (<c>MLContext.GpuDeviceId</c>), as for ML.NET's TorchSharp trainers.
/// </summary>
internal static class DeviceChoice
{
    /// <param name="device">Options.Device, or null.</param>
    /// <param name="fallbackToCpu">Options.FallbackToCpu, or null for the MLContext's.</param>
    /// <param name="host">The step's MLContext access (device settings and log).</param>
    /// <param name="option">The option's name for messages, e.g. "LoraTextClassificationTrainer.Options.Device".</param>
    /// <exception cref="ArgumentException">An unknown device name; the message names the option.</exception>
    /// <exception cref="TorchBackendUnavailableException">A GPU that cannot be used, without fallback.</exception>
    public static Backend Resolve(string? device, bool? fallbackToCpu, MLNetHost host, string option)
    {
        string name = device ?? (host.GpuDeviceId is int id ? string.Create(CultureInfo.InvariantCulture, $"cuda:{id}") : "cpu");
        try
        {
            return Backends.Create(null, name, bf16Compute: false);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{option} = '{name}' is invalid: expected \"cpu\", \"cuda\" or \"cuda:N\" ({e.Message})", "Device", e);
        }
        catch (TorchBackendUnavailableException e) when (fallbackToCpu ?? host.FallbackToCpu)
        {
            host.Channel.Warning($"Device '{name}' is not available, so the model runs on the CPU (FallbackToCpu): {e.Message}");
            return Backend.Native;
        }
    }
}
