using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Exports;
using Microsoft.ML.Lora.Hosting.Generation;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;

namespace Microsoft.ML.Lora.Hosting.Http;

/// <summary>The HTTP API of the service (minimal APIs), every route behind <see cref="TokenAuthFilter"/>.</summary>
internal static class LoraTrainingEndpoints
{
    public static RouteGroupBuilder Map(IEndpointRouteBuilder endpoints)
    {
        var api = endpoints.MapGroup(string.Empty);
        api.AddEndpointFilter<TokenAuthFilter>();
        api.AddEndpointFilter(StoreUnavailable);

        api.MapGet("/", DashboardPage.Serve);
        api.MapGet("/dashboard", DashboardPage.Serve);
        api.MapGet("/health", Health);
        api.MapPost("/jobs", Submit);
        api.MapGet("/jobs", (JobStore store) => ApiResults.Json(store.List()));
        api.MapGet("/jobs/{id}", (string id, JobStore store) => store.Get(id) is { } job ? ApiResults.Json(job) : NotFound(id));
        api.MapPost("/jobs/{id}/cancel", Cancel);
        api.MapGet("/jobs/{id}/events", Events);
        api.MapGet("/jobs/{id}/adapter", Adapter);
        api.MapPost("/jobs/{id}/export-onnx", ExportOnnx);
        api.MapGet("/jobs/{id}/onnx", Onnx);
        api.MapPost("/generate", Generate);
        return api;
    }

    // A job store that refuses (a full disk, I/O errors) answers 503 with the reason as JSON, not an empty 500.
    private static async ValueTask<object?> StoreUnavailable(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        try
        {
            return await next(context).ConfigureAwait(false);
        }
        catch (Microsoft.Data.Sqlite.SqliteException e)
        {
            return ApiResults.Error(StatusCodes.Status503ServiceUnavailable, $"the job store cannot be used: {e.Message}; try again later (see /health)");
        }
    }

    private static async Task<IResult> Health(HealthCheckService health, CancellationToken cancellationToken)
    {
        var report = await health.CheckHealthAsync(cancellationToken).ConfigureAwait(false);
        var body = new
        {
            status = report.Status.ToString(),
            checks = report.Entries.ToDictionary(e => e.Key, e => new { status = e.Value.Status.ToString(), description = e.Value.Description }),
        };
        return ApiResults.Json(body, report.Status == HealthStatus.Unhealthy ? StatusCodes.Status503ServiceUnavailable : StatusCodes.Status200OK);
    }

    private static async Task<IResult> Submit(HttpRequest request, JobStore store, TrainingJobRunner runner, IOptions<LoraTrainingOptions> options)
    {
        try
        {
            var (body, json) = await RequestBody<JobRequest>.ReadAsync(request, optional: false, request.HttpContext.RequestAborted).ConfigureAwait(false);
            var errors = new FieldErrors();
            var validated = JobRequestValidator.Validate(body, options.Value, errors);
            if (validated is not { } ok)
            {
                return ApiResults.FieldErrors(errors);
            }

            if (store.Insert(json, ok.Paths, out string? conflict) is not { } job)
            {
                errors.Add("output", $"'{body.Output}' {conflict}");
                return ApiResults.FieldErrors(errors);
            }

            runner.Notify();
            return Results.Json(job, HostingJson.Options, statusCode: StatusCodes.Status201Created);
        }
        catch (PathEscapeException e)
        {
            return Results.Json(new { error = e.Message, field = e.Field }, HostingJson.Options, statusCode: StatusCodes.Status403Forbidden);
        }
        catch (ApiException e)
        {
            return ApiResults.From(e);
        }
    }

    private static IResult Cancel(string id, JobStore store, TrainingJobRunner runner)
    {
        var job = store.Get(id);
        if (job is null)
        {
            return NotFound(id);
        }

        if (job.State.IsTerminal() || !runner.Cancel(id))
        {
            return Results.Json(store.Get(id), HostingJson.Options, statusCode: StatusCodes.Status409Conflict);
        }

        // A job that finished on its own while the cancel was on its way keeps its result: 409 as for any finished job.
        var now = store.Get(id)!;
        return Results.Json(now, HostingJson.Options, statusCode: now.State is JobState.Succeeded or JobState.Failed ? StatusCodes.Status409Conflict : StatusCodes.Status202Accepted);
    }

    private static async Task Events(HttpContext context, string id, JobStore store, JobEventHub hub, IHostApplicationLifetime lifetime)
    {
        if (store.Get(id) is null)
        {
            await NotFound(id).ExecuteAsync(context).ConfigureAwait(false);
            return;
        }

        await EventStream.WriteAsync(context, id, store, hub, lifetime.ApplicationStopping).ConfigureAwait(false);
    }

    private static IResult Adapter(string id, JobStore store)
    {
        var job = store.Get(id);
        if (job is null)
        {
            return NotFound(id);
        }

        string output = store.GetPaths(id)!.OutputDirectory;
        if (job.State != JobState.Succeeded || !File.Exists(Path.Combine(output, "adapter_model.safetensors")))
        {
            return ApiResults.Error(StatusCodes.Status404NotFound, $"job '{id}' is {job.State.ToWire()}; its adapter exists once it has succeeded");
        }

        return ZipResults.Folder(output, $"adapter-{id}.zip");
    }

    private static async Task<IResult> ExportOnnx(string id, HttpRequest request, JobOnnxExporter exporter)
    {
        try
        {
            var (body, _) = await RequestBody<OnnxExportRequest>.ReadAsync(request, optional: true, request.HttpContext.RequestAborted).ConfigureAwait(false);
            string folder = await exporter.ExportAsync(id, body.ExternalData ?? false, request.HttpContext.RequestAborted).ConfigureAwait(false);
            long bytes = Directory.GetFiles(folder).Sum(f => new FileInfo(f).Length);
            return ApiResults.Json(new { download = $"/jobs/{id}/onnx", bytes });
        }
        catch (ApiException e)
        {
            return ApiResults.From(e);
        }
        catch (Exception e) when (IsDataProblem(e))
        {
            return ApiResults.Error(StatusCodes.Status500InternalServerError, $"export of job '{id}' failed: {e.Message}");
        }
    }

    private static IResult Onnx(string id, JobStore store, JobOnnxExporter exporter)
    {
        if (store.Get(id) is null)
        {
            return NotFound(id);
        }

        string folder = exporter.ExportDirectory(id);
        string file = Path.Combine(folder, JobOnnxExporter.FileName);
        if (!File.Exists(file))
        {
            return ApiResults.Error(StatusCodes.Status404NotFound, $"job '{id}' has no ONNX export yet: POST /jobs/{id}/export-onnx first");
        }

        return Directory.GetFiles(folder).Length == 1
            ? Results.File(file, "application/octet-stream", $"model-{id}.onnx")
            : ZipResults.Folder(folder, $"onnx-{id}.zip");
    }

    private static async Task<IResult> Generate(HttpRequest request, AdapterGenerator generator)
    {
        try
        {
            var (body, _) = await RequestBody<GenerateRequest>.ReadAsync(request, optional: false, request.HttpContext.RequestAborted).ConfigureAwait(false);
            return ApiResults.Json(await generator.GenerateAsync(body, request.HttpContext.RequestAborted).ConfigureAwait(false));
        }
        catch (PathEscapeException e)
        {
            return Results.Json(new { error = e.Message, field = e.Field }, HostingJson.Options, statusCode: StatusCodes.Status403Forbidden);
        }
        catch (ApiException e)
        {
            return ApiResults.From(e);
        }
        catch (Exception e) when (IsDataProblem(e))
        {
            return ApiResults.Error(StatusCodes.Status500InternalServerError, $"generation failed: {e.Message}");
        }
    }

    // The library's errors about files on the server (a deleted adapter folder, a damaged model): a JSON
    // answer naming the file instead of an empty 500.
    private static bool IsDataProblem(Exception e) => e is IOException or InvalidDataException or NotSupportedException or UnauthorizedAccessException;

    private static IResult NotFound(string id) => ApiResults.Error(StatusCodes.Status404NotFound, $"job '{id}' not found");
}

/// <summary>The optional body of <c>POST /jobs/{id}/export-onnx</c>.</summary>
public sealed class OnnxExportRequest
{
    /// <summary>Write weights to <c>model.onnx.data</c> (needed past 2 GB); the download is then a zip. Default false.</summary>
    public bool? ExternalData { get; set; }
}
