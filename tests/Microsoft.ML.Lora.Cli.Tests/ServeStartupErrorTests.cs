using System.Net;
using System.Net.Sockets;

namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora serve</c> startup failures are one <c>error:</c> line with the true cause and exit 1, not a stack trace.</summary>
public sealed class ServeStartupErrorTests
{
    private static (int Exit, string Out, string Err) Serve(params string[] args)
    {
        var run = Task.Run(() => CliRunner.Run(["serve", .. args]));
        Assert.True(run.Wait(TimeSpan.FromSeconds(60)), "serve started instead of failing");
        return run.Result;
    }

    private static void AssertOneErrorLine(string error, string expected)
    {
        string[] lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, error);
        Assert.StartsWith("error: ", lines[0], StringComparison.Ordinal);
        Assert.Contains(expected, lines[0], StringComparison.Ordinal);
    }

    [Fact]
    public void APortInUseIsOneLine()
    {
        using var tmp = new TempDir();
        using var taken = new TcpListener(IPAddress.Loopback, 0);
        taken.Start();
        int port = ((IPEndPoint)taken.LocalEndpoint).Port;
        var (exit, _, error) = Serve("--data-dir", Path.Combine(tmp.Path, "d"), "--urls", $"http://127.0.0.1:{port}");
        Assert.Equal(1, exit);
        AssertOneErrorLine(error, port.ToString(System.Globalization.CultureInfo.InvariantCulture));
    }

    [Fact]
    public void ADataDirectoryHeldByAnotherServiceIsNamedAsSuch()
    {
        using var tmp = new TempDir();
        string data = Path.Combine(tmp.Path, "d");
        Directory.CreateDirectory(data);
        using var held = new FileStream(Path.Combine(data, "service.lock"), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        var (exit, _, error) = Serve("--data-dir", data, "--urls", "http://127.0.0.1:0");
        Assert.Equal(1, exit);
        AssertOneErrorLine(error, "in use by another training service");
    }

    [Fact]
    public void ADataDirectoryThatIsAFileIsNamed()
    {
        using var tmp = new TempDir();
        string file = Path.Combine(tmp.Path, "not-a-folder");
        File.WriteAllText(file, "x");
        var (exit, _, error) = Serve("--data-dir", file, "--urls", "http://127.0.0.1:0");
        Assert.Equal(1, exit);
        AssertOneErrorLine(error, file);
        Assert.DoesNotContain("in use by another", error, StringComparison.Ordinal);
    }
}
