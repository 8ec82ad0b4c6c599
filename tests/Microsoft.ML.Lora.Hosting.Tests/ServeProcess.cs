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

    private ServeProcess(string dataDirectory, string[] arguments)
    {
        var start = new ProcessStartInfo(DotnetHost(), [CliPath(), "serve", "--urls", "http://127.0.0.1:0", "--data-dir", dataDirectory, .. arguments])
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

    /// <summary>Starts the process (with more <c>lora serve</c> arguments) and waits until it listens.</summary>
    public static async Task<ServeProcess> StartAsync(string dataDirectory, params string[] arguments)
    {
        var serve = new ServeProcess(dataDirectory, arguments);
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
