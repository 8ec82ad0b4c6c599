using System.Diagnostics;
using System.Text.Json;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>
/// Runs tests/reference/onnx/check_onnx.py with Debian's python3-onnx (onnx 1.12), an implementation
/// independent of ours, and returns its JSON summary. Fails loudly when python3-onnx is missing.
/// </summary>
internal static class OnnxChecker
{
    private const string Python = "/usr/bin/python3";

    public static JsonElement Check(string modelPath)
    {
        RequireOnnx();
        (int code, string stdout, string stderr) = Run(Script, modelPath);
        Assert.True(code == 0, $"onnx checker rejected '{modelPath}' (exit {code}):\n{stderr}");
        return JsonDocument.Parse(stdout).RootElement.Clone();
    }

    /// <summary>Runs the checker expecting rejection; returns its error text.</summary>
    public static string ExpectRejected(string modelPath)
    {
        RequireOnnx();
        (int code, _, string stderr) = Run(Script, modelPath);
        Assert.True(code != 0, $"onnx checker accepted '{modelPath}' but it should not");
        return stderr;
    }

    private static string Script { get; } = FindScript();

    private static void RequireOnnx()
    {
        if (!File.Exists(Python))
        {
            Assert.Fail($"{Python} not found — install python3 and python3-onnx (apt-get install -y python3-onnx); CI installs them");
        }

        (int code, _, string stderr) = Run("-c", "import onnx, numpy");
        Assert.True(code == 0, $"python3-onnx is missing ({stderr.Trim()}) — run: apt-get install -y python3-onnx (the CI script installs it)");
    }

    private static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        var start = new ProcessStartInfo(Python)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {Python}");
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return (process.ExitCode, stdout, stderr.Result);
    }

    private static string FindScript()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "reference", "onnx", "check_onnx.py");
            if (File.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new FileNotFoundException($"tests/reference/onnx/check_onnx.py not found above {AppContext.BaseDirectory}");
    }
}
