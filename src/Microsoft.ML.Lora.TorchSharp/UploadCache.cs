using TorchTensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>
/// Index arrays (token ids, targets, positions) on the device. Every layer of a step asks for the same
/// arrays, so the last few uploads are kept with a copy of their contents and reused when the contents
/// are equal: each array of a batch crosses to the device once.
/// </summary>
/// <remarks>
/// One cache per thread: a tensor handed out stays alive while its thread works with it, whatever other
/// threads training or generating on the same backend upload (a shared cache could evict, and dispose, a
/// tensor another thread is still reading).
/// </remarks>
internal sealed class UploadCache(TorchBackend backend)
{
    private const int Capacity = 8;
    private readonly ThreadLocal<LinkedList<(int[] Contents, TorchTensor Value)>> entries = new(static () => new());

    /// <summary>The device copy (int64) of <paramref name="values"/>; owned by the cache.</summary>
    public TorchTensor Get(int[] values)
    {
        var mine = entries.Value!;
        for (var node = mine.First; node is not null; node = node.Next)
        {
            if (node.Value.Contents.AsSpan().SequenceEqual(values))
            {
                mine.Remove(node);
                mine.AddFirst(node);
                return node.Value.Value;
            }
        }

        var value = backend.UploadIndices(values).DetachFromDisposeScope();
        mine.AddFirst(((int[])values.Clone(), value));
        if (mine.Count > Capacity)
        {
            mine.Last!.Value.Value.Dispose();
            mine.RemoveLast();
        }

        return value;
    }
}
