namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>The torch backend cannot run here: libtorch's native library is missing, or the asked device is not there.</summary>
public sealed class TorchBackendUnavailableException : Exception
{
    /// <summary>Creates the exception.</summary>
    public TorchBackendUnavailableException(string message, Exception? inner = null)
        : base(message, inner)
    {
    }
}
