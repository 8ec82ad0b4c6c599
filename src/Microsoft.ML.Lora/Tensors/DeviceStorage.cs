namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// The memory of a tensor that a device backend owns (a libtorch tensor, a CUDA buffer). Opaque to
/// everything but its backend; disposed with the <see cref="Tensor"/> that holds it.
/// </summary>
public abstract class DeviceStorage : IDisposable
{
    /// <inheritdoc/>
    public void Dispose()
    {
        Dispose(disposing: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Releases the device memory.</summary>
    protected abstract void Dispose(bool disposing);
}
