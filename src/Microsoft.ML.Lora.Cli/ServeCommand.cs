using System.CommandLine;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;
using Microsoft.ML.Lora.Hosting;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// <c>lora serve</c>: the hosted training service (HTTP API, durable job queue, dashboard) until Ctrl+C.
/// Binds to 127.0.0.1 by default; binding to any other address needs <c>--token</c>.
/// </summary>
internal static class ServeCommand
{
    public static Command Create(TextWriter output, TextWriter error)
    {
        var defaults = new LoraTrainingOptions();
        var urls = new Option<string>("--urls") { Description = "addresses to listen on, ';'-separated (port 0 picks a free one)", DefaultValueFactory = _ => LoraTrainingServer.DefaultUrls };
        var dataDir = new Option<string>("--data-dir") { Description = "job database, checkpoints and default roots", DefaultValueFactory = _ => defaults.DataDirectory };
        var token = new Option<string?>("--token") { Description = "bearer token every request must carry (default: $LORA_TOKEN; none = no authentication)" };
        var modelRoot = new Option<string?>("--model-root") { Description = "folder base models are resolved under (default: <data-dir>/models)" };
        var datasetRoot = new Option<string?>("--dataset-root") { Description = "folder datasets are resolved under (default: <data-dir>/datasets)" };
        var outputRoot = new Option<string?>("--output-root") { Description = "folder adapters are written under (default: <data-dir>/outputs)" };
        var concurrency = new Option<int>("--max-concurrent-jobs") { Description = "jobs that train at the same time", DefaultValueFactory = _ => defaults.MaxConcurrentJobs };
        var checkpointEvery = new Option<int>("--checkpoint-every") { Description = "checkpoint interval in steps for jobs that set none (0 = only on shutdown)", DefaultValueFactory = _ => defaults.CheckpointEverySteps };
        var maxBody = new Option<long>("--max-request-bytes") { Description = "largest request body accepted (413 beyond)", DefaultValueFactory = _ => defaults.MaxRequestBodyBytes };
        var threads = new Option<int>("--threads") { Description = "CPU threads for training and generation", DefaultValueFactory = _ => Environment.ProcessorCount };
        var backendOptions = new BackendOptions();
        var command = new Command("serve", "Run the training service: HTTP API to submit, watch, cancel and download LoRA jobs, a durable SQLite queue, and a dashboard.")
        {
            urls, dataDir, token, modelRoot, datasetRoot, outputRoot, concurrency, checkpointEvery, maxBody, threads,
        };
        backendOptions.AddTo(command);
        command.SetAction(async (parse, cancellationToken) =>
        {
            WebApplication? app = null;
            Backend? backend = null;
            int exit = CommandErrors.Guard(error, () =>
            {
                backend = backendOptions.Create(parse, parse.GetValue(threads));
                string listen = parse.GetValue(urls)!;
                string? secret = parse.GetValue(token) ?? Environment.GetEnvironmentVariable("LORA_TOKEN");
                RequireTokenBeyondLoopback(listen, secret);
                var settings = new LoraTrainingOptions
                {
                    DataDirectory = Path.GetFullPath(parse.GetValue(dataDir)!),
                    ModelRoot = parse.GetValue(modelRoot),
                    DatasetRoot = parse.GetValue(datasetRoot),
                    OutputRoot = parse.GetValue(outputRoot),
                    Token = string.IsNullOrEmpty(secret) ? null : secret,
                    MaxConcurrentJobs = parse.GetValue(concurrency),
                    CheckpointEverySteps = parse.GetValue(checkpointEvery),
                    MaxRequestBodyBytes = parse.GetValue(maxBody),
                    Urls = listen,
                    Backend = backend,
                };
                settings.Validate();
                app = LoraTrainingServer.Create(o => Copy(settings, o));
                return 0;
            });
            if (app is null)
            {
                return exit;
            }

            await using (app.ConfigureAwait(false))
            {
                // Startup failures (the port taken, the data directory locked, unwritable or a file) are one error line.
                int started = await CommandErrors.GuardAsync(error, () => app.StartAsync(cancellationToken)).ConfigureAwait(false);
                if (started != 0)
                {
                    return started;
                }

                output.WriteLine($"lora serve: listening on {string.Join(' ', app.Addresses())}");
                output.WriteLine($"lora serve: jobs and /generate run on the {backend} backend");
                output.Flush();
                await app.WaitForShutdownAsync(cancellationToken).ConfigureAwait(false);
            }

            return 0;
        });
        return command;
    }

    /// <summary>Throws when <paramref name="urls"/> reach beyond loopback and no token protects them.</summary>
    internal static void RequireTokenBeyondLoopback(string urls, string? token)
    {
        if (!string.IsNullOrEmpty(token))
        {
            return;
        }

        foreach (string url in urls.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Uri.TryCreate(url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal), UriKind.Absolute, out var uri))
            {
                throw new ArgumentException($"--urls '{url}' is not an address like http://127.0.0.1:5117");
            }

            bool loopback = uri.IsLoopback || (IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) && IPAddress.IsLoopback(ip));
            if (!loopback)
            {
                throw new ArgumentException($"--urls '{url}' listens beyond this machine without authentication: set --token (or LORA_TOKEN), or bind to 127.0.0.1");
            }
        }
    }

    private static void Copy(LoraTrainingOptions from, LoraTrainingOptions to)
    {
        to.DataDirectory = from.DataDirectory;
        to.ModelRoot = from.ModelRoot;
        to.DatasetRoot = from.DatasetRoot;
        to.OutputRoot = from.OutputRoot;
        to.Token = from.Token;
        to.MaxConcurrentJobs = from.MaxConcurrentJobs;
        to.CheckpointEverySteps = from.CheckpointEverySteps;
        to.MaxRequestBodyBytes = from.MaxRequestBodyBytes;
        to.Urls = from.Urls;
        to.Backend = from.Backend;
    }
}
