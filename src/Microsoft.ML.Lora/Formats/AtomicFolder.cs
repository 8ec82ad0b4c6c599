namespace Microsoft.ML.Lora.Formats;

/// <summary>
/// Writes a folder so that it appears whole or not at all: everything goes into a temporary sibling that is
/// renamed into place at the end; on any failure the sibling is deleted and nothing is left at the target.
/// </summary>
internal static class AtomicFolder
{
    /// <summary>
    /// Runs <paramref name="write"/> on a new temporary folder beside <paramref name="directory"/>, then renames it to
    /// <paramref name="directory"/>, which must not exist or be an empty folder. Returns the full target path.
    /// </summary>
    public static string Write(string directory, Action<string> write, CancellationToken cancellationToken = default)
    {
        string target = Path.GetFullPath(directory);
        if (File.Exists(target) || (Directory.Exists(target) && Directory.EnumerateFileSystemEntries(target).Any()))
        {
            throw new IOException($"output '{target}' already exists and is not an empty folder; choose a new folder");
        }

        string parent = Path.GetDirectoryName(target) ?? ".";
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(target)}.tmp-{Guid.NewGuid():N}");
        try
        {
            Directory.CreateDirectory(temp);
            write(temp);
            cancellationToken.ThrowIfCancellationRequested();
            if (Directory.Exists(target))
            {
                Directory.Delete(target);
            }

            Directory.Move(temp, target);
            return target;
        }
        catch
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }

            throw;
        }
    }
}
