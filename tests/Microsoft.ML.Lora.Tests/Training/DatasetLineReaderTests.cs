using System.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>The line reader's bound: a line past the limit is reported as bad at its number and not held in memory.</summary>
public sealed class DatasetLineReaderTests
{
    [Fact]
    public void ALineLongerThanTheLimitIsABadLineAndTheNextOnesStillRead()
    {
        string text = "first\n" + new string('x', 200_000) + "\nthird\r\n" + new string('y', 1500);
        using var reader = new DatasetLineReader(new MemoryStream(Encoding.UTF8.GetBytes(text)), maxLineBytes: 1000);

        Assert.True(reader.TryReadLine(out string? line, out string? error));
        Assert.Equal(("first", (string?)null, 1), (line, error, reader.LineNumber));

        Assert.True(reader.TryReadLine(out line, out error));
        Assert.Null(line);
        Assert.Equal(2, reader.LineNumber);
        Assert.Contains("longer than 1,000 bytes", error, StringComparison.Ordinal);

        Assert.True(reader.TryReadLine(out line, out error));
        Assert.Equal(("third", (string?)null, 3), (line, error, reader.LineNumber));

        // The last line has no newline and is too long as well.
        Assert.True(reader.TryReadLine(out line, out error));
        Assert.Null(line);
        Assert.Contains("longer than 1,000 bytes (1,500 or more)", error, StringComparison.Ordinal);
        Assert.False(reader.TryReadLine(out _, out _));
    }

    [Fact]
    public void ALineOfExactlyTheLimitIsRead()
    {
        string text = new string('z', 1000) + "\nnext\n";
        using var reader = new DatasetLineReader(new MemoryStream(Encoding.UTF8.GetBytes(text)), maxLineBytes: 1000);
        Assert.True(reader.TryReadLine(out string? line, out string? error));
        Assert.Null(error);
        Assert.Equal(1000, line!.Length);
        Assert.True(reader.TryReadLine(out line, out _));
        Assert.Equal("next", line);
    }
}
