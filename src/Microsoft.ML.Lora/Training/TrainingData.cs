using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// The rows of a run after truncation and the validation split, and the plan that maps an optimizer
/// step to its micro-batches: epoch e visits the rows in <see cref="TrainingRandom.EpochOrder"/>(e),
/// micro-batch k of the epoch takes rows k·B … k·B+B−1 of that order (the last may be shorter), and
/// step s of the epoch takes micro-batches s·A … s·A+A−1 (A = accumulation steps).
/// </summary>
internal sealed class TrainingData
{
    private readonly TrainingOptions options;
    private int cachedEpoch = -1;
    private int[] cachedOrder = [];

    // Streaming: rows are re-read from the source every epoch; the cursor serves steps in order and a
    // resume re-opens the epoch's stream and skips to its position.
    private readonly Func<IEnumerable<TokenRow>>? stream;
    private readonly int vocabSize;
    private readonly int? numLabels;
    private IEnumerator<TokenRow>? cursor;
    private int cursorEpoch = -1;
    private int cursorPosition;

    private TrainingData(TrainingOptions options, List<TokenRow> train, List<TokenRow> validation, ulong fingerprint, int truncated)
        : this(options, train, train.Count, null, 0, null, validation, fingerprint, truncated)
    {
    }

    private TrainingData(TrainingOptions options, List<TokenRow> train, int trainCount, Func<IEnumerable<TokenRow>>? stream, int vocabSize, int? numLabels, List<TokenRow> validation, ulong fingerprint, int truncated)
    {
        this.options = options;
        this.stream = stream;
        this.vocabSize = vocabSize;
        this.numLabels = numLabels;
        Train = train;
        TrainCount = trainCount;
        Validation = validation;
        Fingerprint = fingerprint;
        TruncatedRows = truncated;
        MicroBatchesPerEpoch = (int)(((long)trainCount + options.BatchSize - 1) / options.BatchSize);
        StepsPerEpoch = (int)(((long)MicroBatchesPerEpoch + options.GradientAccumulationSteps - 1) / options.GradientAccumulationSteps);
        long total = options.MaxSteps ?? (long)options.Epochs * StepsPerEpoch;
        TotalSteps = total <= int.MaxValue
            ? (int)total
            : throw new ArgumentException($"TrainingOptions.Epochs = {options.Epochs} gives {total} optimizer steps of {StepsPerEpoch} per epoch, more than 2^31 − 1; set MaxSteps or fewer epochs", nameof(options));
    }

    /// <summary>The training rows in memory (empty when streaming).</summary>
    public IReadOnlyList<TokenRow> Train { get; }

    /// <summary>Training rows (packed rows when packing) per epoch.</summary>
    public int TrainCount { get; }

    public IReadOnlyList<TokenRow> Validation { get; }

    /// <summary>FNV-1a 64 of the training rows as given (ids and labels), so a resume can tell other data apart.</summary>
    public ulong Fingerprint { get; }

    public int TruncatedRows { get; }

    public int MicroBatchesPerEpoch { get; }

    public int StepsPerEpoch { get; }

    public int TotalSteps { get; }

    /// <summary>
    /// Checks, truncates (and packs) the rows. With <paramref name="numLabels"/> (a classifier) every row must be a
    /// <see cref="Models.SequenceClassification.TrainingRow"/> with a label below it, and packing is refused.
    /// </summary>
    public static TrainingData Prepare(IReadOnlyList<TokenRow> trainRows, IReadOnlyList<TokenRow>? validationRows, TrainingOptions options, int vocabSize, int? numLabels = null)
    {
        ArgumentNullException.ThrowIfNull(trainRows);
        RefusePackingForClassifier(options, numLabels);
        if (trainRows.Count == 0)
        {
            throw new ArgumentException("no training rows: the training set is empty", nameof(trainRows));
        }

        if (validationRows is not null && options.ValidationFraction > 0)
        {
            throw new ArgumentException($"a validation set was passed and TrainingOptions.ValidationFraction = {options.ValidationFraction}; use one or the other", nameof(validationRows));
        }

        ulong fingerprint = ComputeFingerprint(trainRows);
        int truncated = 0;
        var train = trainRows.Select(r => Check(r, options, vocabSize, numLabels, "training", ref truncated)).ToList();
        if (options.Packing)
        {
            train = Pack(train, options.MaxSequenceLength);
        }

        var validation = new List<TokenRow>();
        if (validationRows is not null)
        {
            int ignored = 0;
            validation = validationRows.Select(r => Check(r, options, vocabSize, numLabels, "validation", ref ignored)).ToList();
        }
        else if (options.ValidationFraction > 0)
        {
            int held = (int)Math.Round(options.ValidationFraction * train.Count, MidpointRounding.AwayFromZero);
            if (held < 1 || held >= train.Count)
            {
                throw new ArgumentException($"TrainingOptions.ValidationFraction = {options.ValidationFraction} of {train.Count} rows holds out {held}; need at least 1 validation row and 1 training row", nameof(trainRows));
            }

            // Chosen by a seeded permutation, then kept in file order so evaluation batches are stable.
            var heldOut = TrainingRandom.SplitOrder(train.Count, options.Seed).Take(held).ToHashSet();
            validation = train.Where((_, i) => heldOut.Contains(i)).ToList();
            train = train.Where((_, i) => !heldOut.Contains(i)).ToList();
        }

        return new TrainingData(options, train, validation, fingerprint, truncated);
    }

    /// <summary>The micro-batches of 0-based optimizer step <paramref name="step"/>, with their rows.</summary>
    public List<(CausalLmBatch Batch, TokenRow[] Rows)> MicroBatches(int step, out int epoch, out int firstMicroBatchOfEpoch)
    {
        epoch = step / StepsPerEpoch;
        int stepInEpoch = step % StepsPerEpoch;
        int[] order = stream is null ? Order(epoch) : [];
        int b = options.BatchSize;
        firstMicroBatchOfEpoch = stepInEpoch * options.GradientAccumulationSteps;
        int end = Math.Min(firstMicroBatchOfEpoch + options.GradientAccumulationSteps, MicroBatchesPerEpoch);
        var result = new List<(CausalLmBatch, TokenRow[])>();
        for (int k = firstMicroBatchOfEpoch; k < end; k++)
        {
            var rows = stream is null ? order.Skip(k * b).Take(b).Select(i => Train[i]).ToArray() : ReadStream(epoch, k * b, b);
            var batch = CausalLmBatch.FromRows(rows.Select(r => r.InputIds).ToList(), rows.Select(r => r.Labels).ToList(), positions: rows.Select(r => r.Positions).ToList());
            result.Add((batch, rows));
        }

        return result;
    }

    /// <summary>Rows of the epoch that steps before <paramref name="step"/> consumed (where a resume continues).</summary>
    public int EpochPosition(int step) => (int)Math.Min((long)(step % StepsPerEpoch) * options.GradientAccumulationSteps * options.BatchSize, TrainCount);

    /// <summary>
    /// A run over a source too large to hold: <paramref name="open"/> yields the training rows afresh each
    /// time it is called (e.g. a file read lazily). One counting pass takes the row count and fingerprint;
    /// each epoch then reads the source again, shuffling through a seeded buffer of
    /// <see cref="StreamShuffleBuffer"/> rows when <see cref="TrainingOptions.Shuffle"/> is on. Memory stays
    /// at the buffer and one step's rows. Validation rows must be given as a list (no fraction).
    /// </summary>
    public static TrainingData PrepareStreaming(Func<IEnumerable<TokenRow>> open, IReadOnlyList<TokenRow>? validationRows, TrainingOptions options, int vocabSize, int? numLabels = null)
    {
        ArgumentNullException.ThrowIfNull(open);
        RefusePackingForClassifier(options, numLabels);
        if (options.ValidationFraction > 0)
        {
            throw new ArgumentException($"TrainingOptions.ValidationFraction = {options.ValidationFraction} needs the rows in memory; with a streamed training set pass validation rows instead", nameof(validationRows));
        }

        // Counting pass: rows (after truncation and packing) and a fingerprint of what training will see.
        const ulong Prime = 0x100000001B3UL;
        ulong h = 0xCBF29CE484222325UL;
        int count = 0, truncated = 0;
        foreach (var row in Checked(open(), options, vocabSize, numLabels, count: true, onTruncated: () => truncated++))
        {
            foreach (int v in row.InputIds.Concat(row.Labels ?? []).Append(row.InputIds.Length))
            {
                h = (h ^ (uint)v) * Prime;
            }

            count++;
        }

        if (count == 0)
        {
            throw new ArgumentException("no training rows: the streamed training set is empty", nameof(open));
        }

        int ignored = 0;
        var validation = validationRows?.Select(r => Check(r, options, vocabSize, numLabels, "validation", ref ignored)).ToList() ?? [];
        return new TrainingData(options, [], count, open, vocabSize, numLabels, validation, (h ^ (uint)count) * Prime, truncated);
    }

    /// <summary>Rows held back to shuffle a streamed epoch (seeded by the seed and the epoch).</summary>
    public const int StreamShuffleBuffer = 1024;

    private static IEnumerable<TokenRow> Checked(IEnumerable<TokenRow> rows, TrainingOptions options, int vocabSize, int? numLabels, bool count, Action onTruncated)
    {
        var checkedRows = rows.Select(r =>
        {
            int truncated = 0;
            var c = Check(r, options, vocabSize, numLabels, "training", ref truncated);
            if (truncated > 0 && count)
            {
                onTruncated();
            }

            return c;
        });
        return options.Packing ? PackLazily(checkedRows, options.MaxSequenceLength) : checkedRows;
    }

    // Rows [start, start + n) of a streamed epoch, continuing the cursor when it is already there.
    private TokenRow[] ReadStream(int epoch, int start, int n)
    {
        if (cursor is null || cursorEpoch != epoch || cursorPosition != start)
        {
            cursor?.Dispose();
            cursor = EpochStream(epoch).GetEnumerator();
            (cursorEpoch, cursorPosition) = (epoch, 0);
            while (cursorPosition < start && cursor.MoveNext())
            {
                cursorPosition++;
            }
        }

        var rows = new List<TokenRow>(n);
        while (rows.Count < n && cursor.MoveNext())
        {
            rows.Add(cursor.Current);
            cursorPosition++;
        }

        if (rows.Count == 0)
        {
            throw new InvalidOperationException($"the streamed training set ended at row {cursorPosition} of epoch {epoch}; it had {TrainCount} rows when counted (did the file change during training?)");
        }

        return [.. rows];
    }

    private IEnumerable<TokenRow> EpochStream(int epoch) =>
        StreamShuffle(Checked(stream!(), options, vocabSize, numLabels, count: false, onTruncated: static () => { }), options, epoch);

    /// <summary>
    /// A streamed epoch's order: <paramref name="rows"/> as they come when <see cref="TrainingOptions.Shuffle"/> is
    /// off, else a buffer shuffle — fill <see cref="StreamShuffleBuffer"/> rows, then emit a slot drawn with the
    /// (seed, epoch) generator and refill it, and drain the buffer at the end.
    /// </summary>
    internal static IEnumerable<T> StreamShuffle<T>(IEnumerable<T> rows, TrainingOptions options, int epoch)
    {
        if (!options.Shuffle)
        {
            foreach (var r in rows)
            {
                yield return r;
            }

            yield break;
        }

        var random = new Random(unchecked((int)TrainingRandom.DropoutSeed(options.Seed, epoch)));
        var buffer = new List<T>(StreamShuffleBuffer);
        foreach (var r in rows)
        {
            if (buffer.Count < StreamShuffleBuffer)
            {
                buffer.Add(r);
                continue;
            }

            int slot = random.Next(buffer.Count);
            yield return buffer[slot];
            buffer[slot] = r;
        }

        while (buffer.Count > 0)
        {
            int slot = random.Next(buffer.Count);
            yield return buffer[slot];
            buffer[slot] = buffer[^1];
            buffer.RemoveAt(buffer.Count - 1);
        }
    }

    private int[] Order(int epoch)
    {
        if (epoch != cachedEpoch)
        {
            cachedOrder = TrainingRandom.EpochOrder(Train.Count, options.Seed, epoch, options.Shuffle);
            cachedEpoch = epoch;
        }

        return cachedOrder;
    }

    private static void RefusePackingForClassifier(TrainingOptions options, int? numLabels)
    {
        if (numLabels == 1)
        {
            // transformers treats num_labels = 1 as regression; cross entropy over one class is always 0.
            throw new ArgumentException("the model is a classifier with NumLabels 1: cross entropy over one class has no gradient (transformers trains num_labels = 1 as regression, which is not supported); use 2 or more labels");
        }

        if (numLabels is not null && options.Packing)
        {
            throw new ArgumentException($"TrainingOptions.Packing is on but the model is a sequence classifier (NumLabels {numLabels}): each row is classified at its own last token, so rows are not packed; set Packing = false");
        }
    }

    // A GRPO prompt: ids within the vocabulary, at least one, cut to maxLength; its labels are never read.
    private static TokenRow CheckPrompt(TokenRow row, int maxLength, int vocabSize, string set, ref int truncated)
    {
        if (row.Rejected is not null || row.InputIds.Length == 0)
        {
            throw new ArgumentException($"{set} row at line {row.Line}: a GRPO prompt row needs input ids and no rejected completion");
        }

        int bad = Array.FindIndex(row.InputIds, id => (uint)id >= (uint)vocabSize);
        if (bad >= 0)
        {
            throw new ArgumentException($"{set} row at line {row.Line}, position {bad}: id {row.InputIds[bad]} is outside the model's vocabulary [0, {vocabSize})");
        }

        if (row.InputIds.Length <= maxLength)
        {
            return row;
        }

        truncated++;
        return row with { InputIds = row.InputIds[..maxLength], Labels = null };
    }

    // A preference pair: both rows within the vocabulary; each cut to maxLength tokens, keeping at least one completion token.
    private static TokenRow CheckPreference(TokenRow row, int maxLength, int vocabSize, string set, ref int truncated)
    {
        PreferencePair pair;
        try
        {
            pair = DirectPreference.PairOf(row);
        }
        catch (ArgumentException e)
        {
            throw new ArgumentException($"{set} {e.Message}", e);
        }

        foreach (var (ids, what) in new[] { (row.InputIds, "chosen"), (row.Rejected!, "rejected") })
        {
            int bad = Array.FindIndex(ids, id => (uint)id >= (uint)vocabSize);
            if (bad >= 0)
            {
                throw new ArgumentException($"{set} row at line {row.Line}, {what} position {bad}: id {ids[bad]} is outside the model's vocabulary [0, {vocabSize})");
            }
        }

        if (pair.Prompt.Length >= maxLength)
        {
            throw new ArgumentException($"{set} row at line {row.Line}: the prompt has {pair.Prompt.Length} tokens, leaving no completion token within MaxSequenceLength {maxLength}");
        }

        if (row.InputIds.Length <= maxLength && row.Rejected!.Length <= maxLength)
        {
            return row;
        }

        truncated++;
        int room = maxLength - pair.Prompt.Length;
        return DirectPreference.TrainingRow(pair.Prompt, pair.Chosen[..Math.Min(room, pair.Chosen.Length)], pair.Rejected[..Math.Min(room, pair.Rejected.Length)], row.Line);
    }

    private static TokenRow CheckClassification(TokenRow row, int maxLength, int vocabSize, int numLabels, string set, ref int truncated)
    {
        if (!Models.SequenceClassification.IsTrainingRow(row))
        {
            throw new ArgumentException($"{set} row at line {row.Line}: the model is a sequence classifier (NumLabels {numLabels}) but this row is not a classification row (one label, after the text, all other labels -100); build rows with SequenceClassification.TrainingRow(inputIds, label)");
        }

        int label = Models.SequenceClassification.LabelOf(row);
        if (label < 0 || label >= numLabels)
        {
            throw new ArgumentException($"{set} row at line {row.Line}: label {label} is outside the model's classes [0, {numLabels})");
        }

        for (int i = 0; i < row.InputIds.Length; i++)
        {
            if ((uint)row.InputIds[i] >= (uint)vocabSize)
            {
                throw new ArgumentException($"{set} row at line {row.Line}, position {i}: id {row.InputIds[i]} is outside the model's vocabulary [0, {vocabSize})");
            }
        }

        // The text is cut to maxLength tokens; the label token after it is kept.
        if (row.InputIds.Length - 1 > maxLength)
        {
            truncated++;
            row = Models.SequenceClassification.Truncate(row, maxLength);
        }

        return row;
    }

    private static TokenRow Check(TokenRow row, TrainingOptions options, int vocabSize, int? numLabels, string set, ref int truncated)
    {
        ArgumentNullException.ThrowIfNull(row);
        int maxLength = options.MaxSequenceLength;
        bool preference = options.Preference is not null;
        if (options.Grpo is not null)
        {
            return CheckPrompt(row, maxLength, vocabSize, set, ref truncated);
        }

        if (numLabels is int k)
        {
            return CheckClassification(row, maxLength, vocabSize, k, set, ref truncated);
        }

        if (preference != (row.Rejected is not null))
        {
            throw new ArgumentException(preference
                ? $"{set} row at line {row.Line} is not a preference pair, and TrainingOptions.Preference is set: build every row with DirectPreference.TrainingRow(prompt, chosen, rejected)"
                : $"{set} row at line {row.Line} is a preference pair (it has a rejected completion); set TrainingOptions.Preference to train on pairs");
        }

        if (preference)
        {
            return CheckPreference(row, maxLength, vocabSize, set, ref truncated);
        }
        if (row.InputIds.Length > maxLength)
        {
            truncated++;
            row = row with { InputIds = row.InputIds[..maxLength], Labels = row.Labels?[..maxLength] };
        }

        int[] labels = row.Labels ?? row.InputIds;
        if (row.Labels is not null && row.Labels.Length != row.InputIds.Length)
        {
            throw new ArgumentException($"{set} row at line {row.Line}: labels has {row.Labels.Length} entries but input_ids has {row.InputIds.Length}");
        }

        for (int i = 0; i < row.InputIds.Length; i++)
        {
            if ((uint)row.InputIds[i] >= (uint)vocabSize || (labels[i] != CrossEntropy.IgnoreIndex && (uint)labels[i] >= (uint)vocabSize))
            {
                throw new ArgumentException($"{set} row at line {row.Line}, position {i}: id {row.InputIds[i]} / label {labels[i]} is outside the model's vocabulary [0, {vocabSize})");
            }
        }

        bool anyTarget = false;
        for (int i = 1; i < labels.Length && !anyTarget; i++)
        {
            anyTarget = labels[i] != CrossEntropy.IgnoreIndex;
        }

        if (!anyTarget)
        {
            throw new ArgumentException($"{set} row at line {row.Line} has no token to predict after truncation to {maxLength}: it needs at least 2 tokens and a label other than -100 after the first position; remove it or fix its labels");
        }

        return row;
    }

    // Packed rows as TokenRows: the packer's shifted targets become unshifted labels (label t+1 = target t;
    // label 0 is never a target), the positions travel with the row, and its line is its first example's.
    private static List<TokenRow> Pack(List<TokenRow> rows, int sequenceLength) => PackLazily(rows, sequenceLength).ToList();

    private static IEnumerable<TokenRow> PackLazily(IEnumerable<TokenRow> rows, int sequenceLength) =>
        SequencePacker.Pack(rows, sequenceLength).Select(static p =>
        {
            var labels = new int[p.InputIds.Length];
            labels[0] = CrossEntropy.IgnoreIndex;
            Array.Copy(p.Targets, 0, labels, 1, labels.Length - 1);
            return new TokenRow(p.InputIds, labels, p.Lines.Count > 0 ? p.Lines[0] : 0, p.Positions);
        });

    private static ulong ComputeFingerprint(IReadOnlyList<TokenRow> rows)
    {
        const ulong Prime = 0x100000001B3UL;
        ulong h = 0xCBF29CE484222325UL;
        void Add(int value)
        {
            for (int shift = 0; shift < 32; shift += 8)
            {
                h = (h ^ (byte)(value >> shift)) * Prime;
            }
        }

        Add(rows.Count);
        foreach (var r in rows)
        {
            Add(r.InputIds.Length);
            foreach (int id in r.InputIds)
            {
                Add(id);
            }

            Add(r.Labels is null ? -1 : r.Labels.Length);
            foreach (int l in r.Labels ?? [])
            {
                Add(l);
            }

            // A preference pair's rejected row counts too (nothing is added for other rows, so their fingerprints stay).
            if (r.Rejected is { } rejected)
            {
                Add(-2);
                Add(rejected.Length);
                foreach (int id in rejected)
                {
                    Add(id);
                }
            }
        }

        return h;
    }
}
