namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary>Runs the <c>lora</c> command in-process and captures its output.</summary>
internal static class CliRunner
{
    // The CLI sets the process-wide thread count (Backend.Threads); tests run one command at a time.
    private static readonly Lock Gate = new();

    public static (int Exit, string Out, string Err) Run(params string[] args)
    {
        lock (Gate)
        {
            var output = new StringWriter();
            var error = new StringWriter();
            int exit = Program.Run(args, output, error);
            return (exit, output.ToString(), error.ToString());
        }
    }
}

/// <summary>A scratch folder deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir() => Directory.CreateDirectory(Path);

    public string Path { get; } = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lora-cli-" + Guid.NewGuid().ToString("N"));

    /// <summary>Copies a fixture model folder into this folder and returns the copy's path.</summary>
    public string CopyModel(string fixtureCase)
    {
        string dest = System.IO.Path.Combine(Path, fixtureCase);
        Directory.CreateDirectory(dest);
        foreach (string f in Directory.GetFiles(FixturePaths.Case(fixtureCase)))
        {
            File.Copy(f, System.IO.Path.Combine(dest, System.IO.Path.GetFileName(f)));
        }

        return dest;
    }

    /// <summary>Every file below this folder with its size and write time (to prove nothing was written).</summary>
    public string[] Snapshot() => Directory.GetFiles(Path, "*", SearchOption.AllDirectories)
        .Select(f => $"{f} {new FileInfo(f).Length} {File.GetLastWriteTimeUtc(f).Ticks}").Order().ToArray();

    public void Dispose() => Directory.Delete(Path, recursive: true);
}
