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

    /// <summary>
    /// Runs the script with <paramref name="arguments"/>; returns its JSON report (the last line of stdout), or
    /// throws with its stderr. <paramref name="onLine"/> sees every earlier stdout line as it comes.
    /// </summary>
    public static async Task<JsonElement> RunAsync(IEnumerable<string> arguments, TimeSpan timeout, Func<string, Task>? onLine = null)
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
        using (var cts = new CancellationTokenSource(timeout))
        {
            Task<string> stderr = process.StandardError.ReadToEndAsync(cts.Token);
            var lines = new List<string>();
            try
            {
                while (await process.StandardOutput.ReadLineAsync(cts.Token) is { } line)
                {
                    lines.Add(line);
                    if (onLine is not null)
                    {
                        await onLine(line);
                    }
                }

                await process.WaitForExitAsync(cts.Token);
            }
            catch (OperationCanceledException) when (cts.IsCancellationRequested)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync();
                throw new TimeoutException($"dashboard.mjs timed out after {timeout.TotalSeconds:0} s; stdout: {string.Join(" | ", lines)}");
            }

            string err = (await stderr).Trim();
            if (process.ExitCode != 0)
            {
                string shown = process.ExitCode == 3 ? "" : $" (stdout: {string.Join(" | ", lines)})";
                throw new InvalidOperationException($"dashboard.mjs exited {process.ExitCode}: {(err.Length > 0 ? err : "(no stderr)")}{shown}");
            }

            string last = lines.LastOrDefault(l => l.Length > 0) ?? throw new InvalidOperationException($"dashboard.mjs printed no report; stderr: {err}");
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
