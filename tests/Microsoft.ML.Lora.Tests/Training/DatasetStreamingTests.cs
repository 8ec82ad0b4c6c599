using System.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>The reader reads lazily: stopping early reads (and tokenizes) only the start of a large file.</summary>
public sealed class DatasetStreamingTests : DatasetTestFiles
{
    private const int Rows = 60_000;

    [Fact]
    public void StoppingEarlyReadsOnlyTheStartOfAMultiMegabyteFile()
    {
        var text = new StringBuilder();
        for (int i = 0; i < Rows; i++)
        {
            text.Append("{\"text\": \"row ").Append(i).Append(' ').Append('x', 64).Append("\"}\n");
        }

        string path = WriteRaw("big.jsonl", text.ToString());
        long size = new FileInfo(path).Length;
        Assert.True(size > 4_000_000, $"the test file should be several MB, is {size} bytes");

        CountingStream? stream = null;
        var reader = new TextDatasetReader(() => stream = new CountingStream(File.OpenRead(path)), path, Tokenizer);

        var first = reader.Take(3).ToList();
        Assert.Equal([1, 2, 3], first.Select(r => r.Line));
        Assert.Equal(3, Tokenizer.EncodeCalls);
        Assert.True(stream!.BytesRead <= 2 * 64 * 1024, $"read {stream.BytesRead} of {size} bytes for 3 rows");
        Assert.True(stream.Disposed, "an abandoned enumeration must close the file");
        Assert.Equal(3, reader.Report.Rows);

        // A longer prefix reads proportionally more, and a full pass reads the whole file (the counter works).
        Assert.Equal(Rows / 2, reader.Take(Rows / 2).Count());
        Assert.InRange(stream.BytesRead, size / 2, (size / 2) + (2 * 64 * 1024));
        Assert.Equal(Rows, reader.Count());
        Assert.Equal(size, stream.BytesRead);
        Assert.Equal(Rows, reader.Report.Rows);
    }

    [Fact]
    public void EachEnumerationStartsAFreshReport()
    {
        string path = Write("t.jsonl", """{"text": "a"}""", "bad", """{"text": "b"}""");
        var reader = TextDataset.Open(path, Tokenizer, new() { SkipBadRows = true });
        Assert.Single(reader.Take(1));
        Assert.Equal(0, reader.Report.SkippedRows);
        Assert.Equal(2, reader.Count());
        Assert.Equal(1, reader.Report.SkippedRows);
        Assert.Equal(2, reader.Count());
        Assert.Equal(1, reader.Report.SkippedRows);
    }

    /// <summary>Counts the bytes the reader pulls from the file.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long BytesRead { get; private set; }

        public bool Disposed { get; private set; }

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count)
        {
            int n = inner.Read(buffer, offset, count);
            BytesRead += n;
            return n;
        }

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            Disposed = true;
            inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
