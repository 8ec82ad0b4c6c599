namespace Microsoft.ML.Lora.Cli;

/// <summary>Turns the library's exceptions into one clear line on stderr and a non-zero exit code.</summary>
internal static class CommandErrors
{
    /// <summary>Exit code for bad input (files, options, data).</summary>
    public const int BadInput = 1;

    /// <summary>Runs <paramref name="body"/>; expected failures print "error: message" and return <see cref="BadInput"/>.</summary>
    public static int Guard(TextWriter error, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (e is InvalidDataException or IOException or ArgumentException or NotSupportedException or UnauthorizedAccessException or InvalidOperationException)
        {
            error.WriteLine($"error: {e.Message}");
            return BadInput;
        }
    }
}
