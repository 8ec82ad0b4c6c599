using System.Diagnostics;
using System.Text.Json;

namespace Microsoft.ML.Lora.Hosting.Tests.Dashboard;

/// <summary>
/// Runs <c>node tests/dashboard/dashboard.mjs</c>, which drives the dashboard in Debian's headless Chromium
/// through playwright-core. Needs /usr/bin/chromium and .deps/playwright (eng/install-deps.sh); fails with
/// that hint, never skips, when they are missing.
/// </summary>
internal static class DashboardDriver
{
    public const string InstallHint = "run eng/install-deps.sh (it installs Debian chromium and playwright-core under .deps/playwright)";

    public const string ChromiumPath = "/usr/bin/chromium";

    /// <summary>Absolute path of the repository root (the folder holding Microsoft.ML.Lora.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string ScriptPath => Path.Combine(RepoRoot, "tests", "dashboard", "dashboard.mjs");

    /// <summary>Throws with <see cref="InstallHint"/> when Chromium, playwright-core or the script is missing.</summary>
    public static void EnsureInstalled()
    {
        if (!File.Exists(ChromiumPath))
        {
            throw new InvalidOperationException($"{ChromiumPath} not found: {InstallHint}");
        }

        string package = Path.Combine(RepoRoot, ".deps", "playwright", "node_modules", "playwright-core", "package.json");
        if (!File.Exists(package))
        {
            throw new InvalidOperationException($"playwright-core is not installed ({package} missing): {InstallHint}");
        }

        if (!File.Exists(ScriptPath))
        {
            throw new InvalidOperationException($"{ScriptPath} missing");
        }
    }

    /// <summary>Runs the script with <paramref name="arguments"/>; returns its JSON report, or throws with its stderr.</summary>
    public static JsonElement Run(IEnumerable<string> arguments, TimeSpan timeout)
    {
        EnsureInstalled();
        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepoRoot,
        };
        psi.ArgumentList.Add(ScriptPath);
        foreach (string arg in arguments)
        {
            psi.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new InvalidOperationException($"could not start node: {InstallHint}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"could not start node ({e.Message}): {InstallHint}", e);
        }

        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                throw new TimeoutException($"dashboard.mjs timed out after {timeout.TotalSeconds:0} s; stderr: {stderr.Result.Trim()}");
            }

            process.WaitForExit();
            string err = stderr.Result.Trim();
            string output = stdout.Result.Trim();
            if (process.ExitCode != 0)
            {
                string hint = process.ExitCode == 3 ? "" : $" (stdout: {output})";
                throw new InvalidOperationException($"dashboard.mjs exited {process.ExitCode}: {(err.Length > 0 ? err : "(no stderr)")}{hint}");
            }

            string last = output.Split('\n').Last();
            using JsonDocument doc = JsonDocument.Parse(last);
            return doc.RootElement.Clone();
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.Lora.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"Microsoft.ML.Lora.sln not found above {AppContext.BaseDirectory}");
    }
}
