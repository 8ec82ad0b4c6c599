namespace Microsoft.ML.Lora.Text;

/// <summary>
/// Naive twin of <see cref="BpeMerger"/>, kept as the reference the tests compare it with: scan all
/// adjacent pairs, merge the lowest-ranked (leftmost on ties), repeat. O(n²) per word.
/// </summary>
internal static class BpeMergerReference
{
    public static int[] MergeAll(BpeModel model, int[] initialIds)
    {
        var ids = new List<int>(initialIds);
        while (true)
        {
            int best = -1;
            BpeModel.Merge bestMerge = default;
            for (int i = 0; i + 1 < ids.Count; i++)
            {
                if (model.TryGetMerge(ids[i], ids[i + 1], out var m) && (best < 0 || m.Rank < bestMerge.Rank))
                {
                    best = i;
                    bestMerge = m;
                }
            }

            if (best < 0)
            {
                return [.. ids];
            }

            ids[best] = bestMerge.Id;
            ids.RemoveAt(best + 1);
        }
    }
}
