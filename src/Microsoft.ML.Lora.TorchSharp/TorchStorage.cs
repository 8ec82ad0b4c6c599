using Microsoft.ML.Lora.Tensors;
using TorchTensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>A libtorch tensor as the storage of one of our tensors; kept out of TorchSharp's dispose scopes.</summary>
internal sealed class TorchStorage : DeviceStorage
{
    public TorchStorage(TorchTensor value)
    {
        Value = value.DetachFromDisposeScope();
    }

    /// <summary>The libtorch tensor (F32/BF16 in the logical shape; NF4 as its bytes).</summary>
    public TorchTensor Value { get; }

    /// <inheritdoc/>
    protected override void Dispose(bool disposing) => Value.Dispose();
}
