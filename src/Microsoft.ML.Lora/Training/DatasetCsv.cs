using System.Text;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// RFC 4180 records over <see cref="DatasetLineReader"/> lines: fields separated by the delimiter; a field
/// that starts with <c>"</c> is quoted, may hold delimiters and line breaks, and writes a quote as
/// <c>""</c>; a quote inside an unquoted field, or anything but a delimiter after a closing quote, is an
/// error. A line break inside a quoted field is read as <c>\n</c> (a CRLF file gives <c>\n</c> too).
/// TSV uses the same rules with a tab, which also reads the quoted TSV that spreadsheet tools write.
/// </summary>
internal static class DatasetCsv
{
    /// <summary>
    /// Parses the record that starts with <paramref name="firstLine"/>, pulling more lines from
    /// <paramref name="reader"/> while a quoted field is open. Returns the fields, or null with
    /// <paramref name="error"/> set; either way the reader is left at the end of the record.
    /// </summary>
    public static List<string>? ReadRecord(string firstLine, DatasetLineReader reader, char delimiter, out string? error)
    {
        var fields = new List<string>();
        var field = new StringBuilder();
        string text = firstLine;
        int i = 0;
        error = null;
        while (true)
        {
            // At the start of a field.
            field.Clear();
            if (i < text.Length && text[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i == text.Length)
                    {
                        int openedAt = reader.LineNumber;
                        if (!reader.TryReadLine(out string? next, out string? lineError))
                        {
                            error = $"a quoted field is not closed before the end of the file (record starts at this line; last line read {openedAt})";
                            return null;
                        }

                        if (next is null)
                        {
                            error = $"line {reader.LineNumber} inside a quoted field is {lineError}";
                            return null;
                        }

                        field.Append('\n');
                        text = next;
                        i = 0;
                        continue;
                    }

                    char c = text[i++];
                    if (c != '"')
                    {
                        field.Append(c);
                    }
                    else if (i < text.Length && text[i] == '"')
                    {
                        field.Append('"');
                        i++;
                    }
                    else
                    {
                        break;
                    }
                }

                if (i < text.Length && text[i] != delimiter)
                {
                    error = $"field {fields.Count + 1}: '{text[i]}' after a closing quote; a quote inside a quoted field must be doubled (\"\")";
                    return null;
                }
            }
            else
            {
                int stop = text.IndexOf(delimiter, i);
                if (stop < 0)
                {
                    stop = text.Length;
                }

                var raw = text.AsSpan(i, stop - i);
                int quote = raw.IndexOf('"');
                if (quote >= 0)
                {
                    error = $"field {fields.Count + 1} has a quote inside an unquoted value ({Excerpt(raw)}); quote the whole field and double inner quotes";
                    return null;
                }

                field.Append(raw);
                i = stop;
            }

            fields.Add(field.ToString());
            if (i == text.Length)
            {
                return fields;
            }

            i++; // the delimiter
        }
    }

    private static string Excerpt(ReadOnlySpan<char> s) => s.Length <= 40 ? s.ToString() : s[..40].ToString() + "…";
}
