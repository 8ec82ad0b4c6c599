using System.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Reads a UTF-8 stream line by line with exact line numbers, decoding each line on its own so that bad
/// bytes are reported at their line (a <see cref="StreamReader"/> decodes a buffer ahead of the line it
/// returns). Lines end at <c>\n</c>; a trailing <c>\r</c> is dropped; a UTF-8 BOM at the start is skipped.
/// Memory is one buffer plus the longest line, whatever the file size; a line longer than the limit
/// (<see cref="DefaultMaxLineBytes"/>) is skipped as bad, without being held.
/// </summary>
internal sealed class DatasetLineReader : IDisposable
{
    /// <summary>The longest line read: 256 MiB, far beyond any training row, far below what a string may hold.</summary>
    public const int DefaultMaxLineBytes = 1 << 28;

    private const int BufferSize = 64 * 1024;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private readonly Stream stream;
    private readonly byte[] buffer = new byte[BufferSize];
    private byte[] line = new byte[256];
    private int start;
    private int end;
    private bool eof;
    private bool first = true;

    private readonly int maxLineBytes;

    public DatasetLineReader(Stream stream, int maxLineBytes = DefaultMaxLineBytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(maxLineBytes);
        this.stream = stream;
        this.maxLineBytes = maxLineBytes;
    }

    /// <summary>1-based number of the line last returned (0 before the first).</summary>
    public int LineNumber { get; private set; }

    /// <summary>
    /// Reads the next line: false at the end of the stream. <paramref name="text"/> is null and
    /// <paramref name="error"/> says why when the line is not valid UTF-8 (the reader stays usable).
    /// </summary>
    public bool TryReadLine(out string? text, out string? error)
    {
        int length = 0;
        long skipped = 0;
        bool any = false;
        while (true)
        {
            if (start == end)
            {
                if (eof || !Fill())
                {
                    if (!any)
                    {
                        text = null;
                        error = null;
                        return false;
                    }

                    break;
                }
            }

            any = true;
            var available = buffer.AsSpan(start, end - start);
            int newline = available.IndexOf((byte)'\n');
            var chunk = newline >= 0 ? available[..newline] : available;
            if (skipped > 0 || (long)length + chunk.Length > maxLineBytes)
            {
                // Too long: count the rest of the line without keeping it.
                skipped += length + chunk.Length;
                length = 0;
            }
            else
            {
                Append(chunk, ref length);
            }

            start += chunk.Length;
            if (newline >= 0)
            {
                start++;
                break;
            }
        }

        LineNumber++;
        if (skipped > 0)
        {
            first = false;
            text = null;
            error = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"longer than {maxLineBytes:N0} bytes ({skipped:N0} or more), the most one row may have");
            return true;
        }

        var bytes = line.AsSpan(0, length);
        if (first)
        {
            first = false;
            if (bytes.StartsWith("\uFEFF"u8))
            {
                bytes = bytes[3..];
            }
        }

        if (bytes.Length > 0 && bytes[^1] == (byte)'\r')
        {
            bytes = bytes[..^1];
        }

        try
        {
            text = StrictUtf8.GetString(bytes);
            error = null;
        }
        catch (DecoderFallbackException e)
        {
            text = null;
            error = $"not valid UTF-8 (byte {e.Index} of the line)";
        }

        return true;
    }

    public void Dispose() => stream.Dispose();

    private bool Fill()
    {
        start = 0;
        end = stream.Read(buffer, 0, buffer.Length);
        eof = end == 0;
        return !eof;
    }

    private void Append(ReadOnlySpan<byte> chunk, ref int length)
    {
        if (length + chunk.Length > line.Length)
        {
            Array.Resize(ref line, (int)Math.Min(maxLineBytes, Math.Max(2L * line.Length, (long)length + chunk.Length)));
        }

        chunk.CopyTo(line.AsSpan(length));
        length += chunk.Length;
    }
}
