using System.Collections.Concurrent;
using System.Diagnostics;

namespace Microsoft.ML.Lora.Hosting.Tests;

/// <summary>The built <c>lora serve</c> running as a separate process (the real CLI), with its output drained.</summary>
internal sealed class ServeProcess : IDisposable
{
    private const string ListeningPrefix = "lora serve: listening on ";
    private readonly Process process;
    private readonly ConcurrentQueue<string> log = new();
    private readonly TaskCompletionSource<string> listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServeProcess(string dataDirectory, string[] arguments, string[]? wrapper = null)
    {
        string[] command = [DotnetHost(), CliPath(), "serve", "--urls", "http://127.0.0.1:0", "--data-dir", dataDirectory, .. arguments];
        string[] full = [.. wrapper ?? [], .. command];
        var start = new ProcessStartInfo(full[0], full[1..])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        process = new Process { StartInfo = start };
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
    }

    public HttpClient Client { get; private set; } = new();

    public string Log => string.Join('\n', log);

    /// <summary>The process id (the service's own, also when it runs in a wrapper that execs it).</summary>
    public int Id => process.Id;

    /// <summary>CPU time the process has used so far.</summary>
    public TimeSpan CpuTime
    {
        get
        {
            process.Refresh();
            return process.TotalProcessorTime;
        }
    }

    /// <summary>Lines the process has written so far (stdout and stderr).</summary>
    public int LogLines => log.Count;

    /// <summary>Starts the process (with more <c>lora serve</c> arguments) and waits until it listens.</summary>
    public static Task<ServeProcess> StartAsync(string dataDirectory, params string[] arguments) => StartAsync(new ServeProcess(dataDirectory, arguments));

    /// <summary>
    /// Starts the process in a mount namespace of its own (<c>unshare</c>, util-linux) where
    /// <paramref name="dataDirectory"/> is a new tmpfs of <paramref name="bytes"/> bytes: a small disk that fills up. The
    /// files the test writes at <see cref="HostPath"/> land on it.
    /// </summary>
    public static Task<ServeProcess> StartOnSmallDiskAsync(string dataDirectory, long bytes, params string[] arguments)
    {
        Directory.CreateDirectory(dataDirectory);

        // As root a mount namespace is enough; otherwise a user namespace maps the user to root inside it.
        string[] unshare = Environment.UserName == "root" ? ["unshare", "--mount"] : ["unshare", "--mount", "--map-root-user"];
        string mount = string.Create(System.Globalization.CultureInfo.InvariantCulture, $"mount -t tmpfs -o size={bytes} tmpfs \"$0\" && exec \"$@\"");
        return StartAsync(new ServeProcess(dataDirectory, arguments, [.. unshare, "sh", "-c", mount, dataDirectory]));
    }

    /// <summary>Where <paramref name="path"/> of the process's own mount namespace is seen from the test's.</summary>
    public string HostPath(string path) => $"/proc/{process.Id}/root{Path.GetFullPath(path)}";

    private static async Task<ServeProcess> StartAsync(ServeProcess serve)
    {
        try
        {
            string url = await serve.listening.Task.WaitAsync(TimeSpan.FromSeconds(60));
            serve.Client = new HttpClient { BaseAddress = new Uri(url), Timeout = TimeSpan.FromSeconds(60) };
            return serve;
        }
        catch
        {
            serve.Dispose();
            throw;
        }
    }

    /// <summary>SIGKILL to the process and its children: no shutdown code runs.</summary>
    public void Kill()
    {
        process.Kill(entireProcessTree: true);
        process.WaitForExit();
    }

    /// <summary>SIGTERM, as a service manager stops a service; returns the exit code.</summary>
    public int Terminate(TimeSpan timeout)
    {
        using (var kill = Process.Start("kill", ["-TERM", process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]))
        {
            kill.WaitForExit();
        }

        Assert.True(process.WaitForExit(timeout), $"lora serve did not exit within {timeout} of SIGTERM:\n{Log}");
        process.WaitForExit();
        return process.ExitCode;
    }

    public void Dispose()
    {
        if (!process.HasExited)
        {
            Kill();
        }

        Client.Dispose();
        process.Dispose();
    }

    private void Line(string? line)
    {
        if (line is null)
        {
            listening.TrySetException(new InvalidOperationException($"lora serve exited before listening:\n{Log}"));
            return;
        }

        log.Enqueue(line);
        if (line.StartsWith(ListeningPrefix, StringComparison.Ordinal))
        {
            listening.TrySetResult(line[ListeningPrefix.Length..].Split(' ')[0]);
        }
    }

    private static string DotnetHost() =>
        Environment.ProcessPath is string path && Path.GetFileNameWithoutExtension(path) == "dotnet" ? path : "dotnet";

    // tests/Microsoft.ML.Lora.Hosting.Tests/bin/<Configuration>/<tfm>/ → src/Microsoft.ML.Lora.Cli/bin/<Configuration>/<tfm>/lora.dll
    private static string CliPath()
    {
        var tfm = new DirectoryInfo(AppContext.BaseDirectory.TrimEnd(Path.DirectorySeparatorChar));
        string configuration = tfm.Parent!.Name;
        string root = Path.GetDirectoryName(FixturePaths.Root)!;
        string dll = Path.Combine(Path.GetDirectoryName(root)!, "src", "Microsoft.ML.Lora.Cli", "bin", configuration, tfm.Name, "lora.dll");
        return File.Exists(dll) ? dll : throw new FileNotFoundException($"the lora CLI is not built at {dll}; build tests/Microsoft.ML.Lora.Hosting.Tests (it builds the CLI)", dll);
    }
}
