using System.Runtime.InteropServices;
using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// The completions sampled for one batch of prompts (generation <see cref="Index"/>), scored and with their π_old,
/// reused by the <see cref="GrpoOptions.Iterations"/> optimizer steps of that batch. A checkpoint taken between those
/// steps stores it as <see cref="FileName"/>, so a resumed run continues on the very same samples.
/// </summary>
internal sealed class GrpoGeneration
{
    /// <summary>The file in a checkpoint folder.</summary>
    public const string FileName = "grpo_generation.safetensors";

    public GrpoGeneration(int index, IReadOnlyList<GrpoSample[]> microBatches, IReadOnlyList<double[]> rewards)
    {
        if (microBatches.Count != rewards.Count || microBatches.Where((m, i) => m.Length != rewards[i].Length).Any())
        {
            throw new ArgumentException("one reward per sample of each micro-batch", nameof(rewards));
        }

        Index = index;
        MicroBatches = microBatches;
        Rewards = rewards;
    }

    /// <summary>The generation: optimizer step / <see cref="GrpoOptions.Iterations"/>.</summary>
    public int Index { get; }

    /// <summary>Samples of each micro-batch, group after group.</summary>
    public IReadOnlyList<GrpoSample[]> MicroBatches { get; }

    /// <summary>Rewards of each micro-batch's samples.</summary>
    public IReadOnlyList<double[]> Rewards { get; }

    /// <summary>The tensors of <see cref="FileName"/>: sizes, token ids, π_old, advantages and rewards, flattened.</summary>
    public IEnumerable<SafeTensorEntry> Entries()
    {
        var all = MicroBatches.SelectMany(static m => m).ToList();
        long[] prompts = all.SelectMany(static s => s.Prompt).Select(static t => (long)t).ToArray();
        long[] completions = all.SelectMany(static s => s.Completion).Select(static t => (long)t).ToArray();
        float[] old = all.SelectMany(static s => s.OldLogProbs).ToArray();
        double[] advantages = all.Select(static s => s.Advantage).ToArray();
        double[] rewards = Rewards.SelectMany(static r => r).ToArray();
        yield return SafeTensorEntry.FromInt64("generation", [1], [Index]);
        yield return SafeTensorEntry.FromInt64("micro_batch_samples", [MicroBatches.Count], MicroBatches.Select(static m => (long)m.Length).ToArray());
        yield return SafeTensorEntry.FromInt64("prompt_lengths", [all.Count], all.Select(static s => (long)s.Prompt.Length).ToArray());
        yield return SafeTensorEntry.FromInt64("prompt_ids", [prompts.Length], prompts);
        yield return SafeTensorEntry.FromInt64("completion_lengths", [all.Count], all.Select(static s => (long)s.Completion.Length).ToArray());
        yield return SafeTensorEntry.FromInt64("completion_ids", [completions.Length], completions);
        yield return SafeTensorEntry.FromFloats("old_log_probs", [old.Length], old);
        yield return SafeTensorEntry.FromBytes("advantages", SafeTensorsDTypes.F64, [advantages.Length], MemoryMarshal.AsBytes(advantages.AsSpan()).ToArray());
        yield return SafeTensorEntry.FromBytes("rewards", SafeTensorsDTypes.F64, [rewards.Length], MemoryMarshal.AsBytes(rewards.AsSpan()).ToArray());
    }

    /// <summary>
    /// Reads <see cref="FileName"/> of <paramref name="checkpointDirectory"/>, or null when it has none. Every size is
    /// checked against the data the file holds and every token id against <paramref name="vocabSize"/>; errors name the
    /// file and the tensor.
    /// </summary>
    public static GrpoGeneration? Read(string checkpointDirectory, int vocabSize)
    {
        string path = Path.Combine(checkpointDirectory, FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        using var file = SafeTensorsFile.Open(path);
        InvalidDataException Bad(string tensor, string what) => new($"{path}: tensor '{tensor}' {what}");
        long[] generation = file.ReadInt64("generation");
        long[] perMicro = file.ReadInt64("micro_batch_samples");
        long[] promptLengths = file.ReadInt64("prompt_lengths");
        long[] completionLengths = file.ReadInt64("completion_lengths");
        if (generation.Length != 1 || generation[0] is < 0 or > int.MaxValue)
        {
            throw Bad("generation", "must hold one step count in [0, 2^31 − 1]");
        }

        int count = promptLengths.Length;
        if (perMicro.Any(n => n < 1 || n > count) || perMicro.Sum() != count || completionLengths.Length != count)
        {
            throw Bad("micro_batch_samples", $"must split the {count} samples into non-empty micro-batches, with one completion length per sample ({completionLengths.Length})");
        }

        int[] promptIds = Ids(file, "prompt_ids", promptLengths, vocabSize, Bad);
        int[] completionIds = Ids(file, "completion_ids", completionLengths, vocabSize, Bad);
        float[] old = file.ReadFloats("old_log_probs");
        double[] advantages = Doubles(file, "advantages", Bad);
        double[] rewards = Doubles(file, "rewards", Bad);
        if (old.Length != completionIds.Length || old.Any(static v => !(v <= 0)))
        {
            throw Bad("old_log_probs", $"must hold one log-probability ≤ 0 per completion token ({completionIds.Length})");
        }

        foreach (var (name, values) in new[] { ("advantages", advantages), ("rewards", rewards) })
        {
            if (values.Length != count || values.Any(static v => !double.IsFinite(v)))
            {
                throw Bad(name, $"must hold one finite value per sample ({count})");
            }
        }

        var samples = new List<GrpoSample[]>(perMicro.Length);
        var scores = new List<double[]>(perMicro.Length);
        int next = 0, promptAt = 0, completionAt = 0;
        foreach (long n in perMicro)
        {
            var micro = new GrpoSample[n];
            for (int i = 0; i < n; i++, next++)
            {
                int p = (int)promptLengths[next], c = (int)completionLengths[next];
                micro[i] = new GrpoSample(promptIds.AsSpan(promptAt, p).ToArray(), completionIds.AsSpan(completionAt, c).ToArray(), old.AsSpan(completionAt, c).ToArray(), advantages[next]);
                promptAt += p;
                completionAt += c;
            }

            samples.Add(micro);
            scores.Add(rewards.AsSpan(next - (int)n, (int)n).ToArray());
        }

        return new GrpoGeneration((int)generation[0], samples, scores);
    }

    // Token ids of samples whose lengths are given: every length ≥ 1, the lengths tile the tensor, ids in [0, vocab).
    private static int[] Ids(SafeTensorsFile file, string name, long[] lengths, int vocabSize, Func<string, string, InvalidDataException> bad)
    {
        long[] ids = file.ReadInt64(name);
        if (lengths.Any(static l => l is < 1 or > int.MaxValue) || lengths.Sum() != ids.Length)
        {
            throw bad(name, $"must hold the {lengths.Length} samples' tokens (each at least 1) given by its lengths tensor ({ids.Length} held)");
        }

        if (ids.Any(t => t < 0 || t >= vocabSize))
        {
            throw bad(name, $"holds a token id outside [0, {vocabSize}) of this model's vocabulary");
        }

        return ids.Select(static t => (int)t).ToArray();
    }

    private static double[] Doubles(SafeTensorsFile file, string name, Func<string, string, InvalidDataException> bad)
    {
        if (file.Info(name).DType != SafeTensorsDTypes.F64)
        {
            throw bad(name, "must be F64");
        }

        return MemoryMarshal.Cast<byte, double>(file.GetBytes(name)).ToArray();
    }
}
