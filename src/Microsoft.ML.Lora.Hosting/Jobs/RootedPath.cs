namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>
/// Confines a path from a request to a configured root: relative paths resolve under the root, absolute
/// ones must lie inside it, <c>..</c> segments are refused outright, and symbolic links are followed so a
/// link inside the root that points outside it is refused too.
/// </summary>
internal static class RootedPath
{
    private const int MaxLinkDepth = 40;

    /// <summary>The absolute, link-free path of <paramref name="requested"/> under <paramref name="root"/>.</summary>
    /// <exception cref="PathEscapeException">The path leaves the root.</exception>
    public static string Resolve(string root, string requested, string field)
    {
        string[] segments = requested.Split(['/', '\\'], StringSplitOptions.RemoveEmptyEntries);
        if (segments.Any(s => s == ".."))
        {
            throw new PathEscapeException(field, $"{field} '{requested}' contains '..'; paths must stay inside the configured root");
        }

        string rootFull = RealPath(Path.GetFullPath(root));
        string candidate = Path.IsPathRooted(requested) ? Path.GetFullPath(requested) : Path.GetFullPath(Path.Combine(rootFull, requested));
        if (!IsInside(rootFull, candidate) && !IsInside(Path.GetFullPath(root), candidate))
        {
            throw new PathEscapeException(field, $"{field} '{requested}' is outside the configured root");
        }

        string real;
        try
        {
            real = RealPath(candidate);
        }
        catch (IOException e)
        {
            // A link loop (or a link that cannot be read): the path cannot be shown to stay inside the root.
            throw new PathEscapeException(field, $"{field} '{requested}' cannot be resolved inside the configured root: {e.Message}");
        }

        if (!IsInside(rootFull, real))
        {
            throw new PathEscapeException(field, $"{field} '{requested}' leads outside the configured root through a symbolic link");
        }

        return real;
    }

    /// <summary>True when <paramref name="path"/> is <paramref name="root"/> or below it.</summary>
    public static bool IsInside(string root, string path)
    {
        string r = Path.TrimEndingDirectorySeparator(root);
        string p = Path.TrimEndingDirectorySeparator(path);
        return p.Equals(r, StringComparison.Ordinal) || p.StartsWith(r + Path.DirectorySeparatorChar, StringComparison.Ordinal);
    }

    /// <summary>The path with every symbolic link of its existing part resolved (the rest appended as is).</summary>
    public static string RealPath(string fullPath, int depth = 0)
    {
        if (depth > MaxLinkDepth)
        {
            throw new IOException($"'{fullPath}': too many levels of symbolic links");
        }

        string current = Path.GetPathRoot(fullPath)!;
        foreach (string segment in fullPath[current.Length..].Split(Path.DirectorySeparatorChar, StringSplitOptions.RemoveEmptyEntries))
        {
            string next = Path.Combine(current, segment);
            var info = new FileInfo(next);
            if (info.LinkTarget is string target)
            {
                string absolute = Path.IsPathRooted(target) ? target : Path.Combine(current, target);
                next = RealPath(Path.GetFullPath(absolute), depth + 1);
            }

            current = next;
        }

        return current;
    }
}
