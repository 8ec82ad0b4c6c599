using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>Activations a module saved in Forward for its Backward; released together.</summary>
internal sealed class SavedTensors
{
    private readonly List<Tensor> tensors = [];

    /// <summary>Whether anything is held.</summary>
    public bool IsEmpty => tensors.Count == 0;

    /// <summary>Allocates an F32 tensor on <paramref name="backend"/> that lives until <see cref="Release"/>.</summary>
    public Tensor Keep(Backend backend, params int[] shape)
    {
        var t = backend.Empty(DType.F32, shape);
        tensors.Add(t);
        return t;
    }

    /// <summary>Returns every saved tensor to the pool.</summary>
    public void Release()
    {
        foreach (var t in tensors)
        {
            t.Dispose();
        }

        tensors.Clear();
    }
}
