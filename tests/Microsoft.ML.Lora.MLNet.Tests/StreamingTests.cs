using Microsoft.ML.Data;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.MLNet.Tests;

/// <summary>
/// The IDataView path streams: Fit opens one cursor to count the rows and one per epoch, reads each row once per
/// pass, and trains while the epoch's cursor is still reading (only the engine's shuffle buffer of rows is held).
/// </summary>
public sealed class StreamingTests
{
    [Fact]
    public void FitReadsTheRowsOnceToCountAndOncePerEpochThroughCursors()
    {
        var ml = new MLContext(seed: 1);
        var rows = new CountingDataView(ml.Data.LoadFromEnumerable(StoryRows.Mood(40, seed: 1)));
        var options = TestSettings.Regression();
        options.MaxEpochs = 3;
        options.BatchSize = 8;

        using var model = ml.Regression.Trainers.LoraTextRegression(options).Fit(rows);

        Assert.Equal(15, model.TrainingMetrics!.Steps);
        Assert.Equal(1 + 3, rows.CursorsOpened);
        Assert.Equal([40, 40, 40, 40], rows.RowsReadPerCursor);
    }

    [Fact]
    public void TrainingStartsBeforeAnEpochIsReadAndHoldsNoMoreThanTheShuffleBuffer()
    {
        // More rows than the shuffle buffer: the first step must come while the epoch's cursor is mid-way.
        int count = TrainingData.StreamShuffleBuffer + 200;
        var ml = new MLContext(seed: 1);
        var rows = new CountingDataView(ml.Data.LoadFromEnumerable(StoryRows.Mood(count, seed: 1)));
        var options = TestSettings.Regression();
        options.BatchSize = 4;
        options.MaxSteps = 2;
        options.MaxSequenceLength = 16;
        int[]? readAtFirstStep = null;
        options.Progress = new RecordingProgress<TrainingProgress>(p =>
        {
            if (p.Step == 1)
            {
                readAtFirstStep = [.. rows.RowsReadPerCursor];
            }
        });

        using var model = ml.Regression.Trainers.LoraTextRegression(options).Fit(rows);

        Assert.NotNull(readAtFirstStep);
        Assert.Equal(2, readAtFirstStep.Length);
        Assert.Equal(count, readAtFirstStep[0]);
        Assert.InRange(readAtFirstStep[1], options.BatchSize, TrainingData.StreamShuffleBuffer + options.BatchSize);
        Assert.Equal(count, model.TrainingMetrics!.TrainingRows);
    }

    /// <summary>A data view whose cursors count the rows they move over.</summary>
    private sealed class CountingDataView(IDataView inner) : IDataView
    {
        private readonly List<int> reads = [];

        public int CursorsOpened
        {
            get
            {
                lock (reads)
                {
                    return reads.Count;
                }
            }
        }

        public int[] RowsReadPerCursor
        {
            get
            {
                lock (reads)
                {
                    return [.. reads];
                }
            }
        }

        public bool CanShuffle => false;

        public DataViewSchema Schema => inner.Schema;

        public long? GetRowCount() => inner.GetRowCount();

        public DataViewRowCursor GetRowCursor(IEnumerable<DataViewSchema.Column> columnsNeeded, Random? rand = null)
        {
            int index;
            lock (reads)
            {
                index = reads.Count;
                reads.Add(0);
            }

            return new CountingCursor(inner.GetRowCursor(columnsNeeded, rand), () =>
            {
                lock (reads)
                {
                    reads[index]++;
                }
            });
        }

        public DataViewRowCursor[] GetRowCursorSet(IEnumerable<DataViewSchema.Column> columnsNeeded, int n, Random? rand = null) =>
            [GetRowCursor(columnsNeeded, rand)];
    }

    private sealed class CountingCursor(DataViewRowCursor inner, Action counted) : DataViewRowCursor
    {
        public override DataViewSchema Schema => inner.Schema;

        public override long Position => inner.Position;

        public override long Batch => inner.Batch;

        public override ValueGetter<DataViewRowId> GetIdGetter() => inner.GetIdGetter();

        public override bool IsColumnActive(DataViewSchema.Column column) => inner.IsColumnActive(column);

        public override ValueGetter<TValue> GetGetter<TValue>(DataViewSchema.Column column) => inner.GetGetter<TValue>(column);

        public override bool MoveNext()
        {
            if (!inner.MoveNext())
            {
                return false;
            }

            counted();
            return true;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                inner.Dispose();
            }

            base.Dispose(disposing);
        }
    }
}
