using TorchTensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>
/// Index arrays (token ids, targets, positions) on the device. Every layer of a step asks for the same
/// arrays, so the last few uploads are kept with a copy of their contents and reused when the contents
/// are equal: each array of a batch crosses to the device once.
/// </summary>
internal sealed class UploadCache(TorchBackend backend)
{
    private const int Capacity = 8;
    private readonly LinkedList<(int[] Contents, TorchTensor Value)> entries = new();

    /// <summary>The device copy (int64) of <paramref name="values"/>; owned by the cache.</summary>
    public TorchTensor Get(int[] values)
    {
        lock (entries)
        {
            for (var node = entries.First; node is not null; node = node.Next)
            {
                if (node.Value.Contents.AsSpan().SequenceEqual(values))
                {
                    entries.Remove(node);
                    entries.AddFirst(node);
                    return node.Value.Value;
                }
            }

            var value = backend.UploadIndices(values).DetachFromDisposeScope();
            entries.AddFirst(((int[])values.Clone(), value));
            if (entries.Count > Capacity)
            {
                entries.Last!.Value.Value.Dispose();
                entries.RemoveLast();
            }

            return value;
        }
    }
}
