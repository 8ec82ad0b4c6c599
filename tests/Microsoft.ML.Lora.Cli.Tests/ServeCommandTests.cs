namespace Microsoft.ML.Lora.Cli.Tests;

/// <summary><c>lora serve</c>'s guard: no unauthenticated listening beyond loopback. (The running service is tested in Microsoft.ML.Lora.Hosting.Tests, including as a real process.)</summary>
public sealed class ServeCommandTests
{
    [Theory]
    [InlineData("http://0.0.0.0:5117")]
    [InlineData("http://*:5117")]
    [InlineData("http://+:5117")]
    [InlineData("http://10.1.2.3:5117")]
    [InlineData("http://127.0.0.1:5117;http://[::]:5117")]
    public void ServeRefusesToListenBeyondLoopbackWithoutAToken(string urls)
    {
        using var tmp = new TempDir();
        string data = Path.Combine(tmp.Path, "data");
        var (exit, _, error) = CliRunner.Run("serve", "--urls", urls, "--data-dir", data);
        Assert.Equal(1, exit);
        Assert.Contains("--token", error, StringComparison.Ordinal);
        Assert.False(Directory.Exists(data), "nothing is created before the options are accepted");
    }

    [Theory]
    [InlineData("http://127.0.0.1:5117", null)]
    [InlineData("http://localhost:5117", null)]
    [InlineData("http://[::1]:5117", null)]
    [InlineData("http://127.0.0.1:0;http://[::1]:0", null)]
    [InlineData("http://0.0.0.0:5117", "t0ken")]
    [InlineData("http://*:5117", "t0ken")]
    public void LoopbackOrATokenIsAccepted(string urls, string? token) =>
        ServeCommand.RequireTokenBeyondLoopback(urls, token);

    [Fact]
    public void AMalformedAddressIsNamed()
    {
        var e = Assert.Throws<ArgumentException>(() => ServeCommand.RequireTokenBeyondLoopback("not a url", null));
        Assert.Contains("'not a url'", e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void InvalidServiceOptionsAreRefusedBeforeListening()
    {
        using var tmp = new TempDir();
        var (exit, _, error) = CliRunner.Run("serve", "--data-dir", Path.Combine(tmp.Path, "d"), "--max-concurrent-jobs", "0");
        Assert.Equal(1, exit);
        Assert.Contains("MaxConcurrentJobs", error, StringComparison.Ordinal);
    }
}
