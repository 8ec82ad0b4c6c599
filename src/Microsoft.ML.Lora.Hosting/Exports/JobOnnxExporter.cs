using Microsoft.Extensions.Logging;
using Microsoft.ML.Lora.Hosting.Http;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Running;
using Microsoft.ML.Lora.Hosting.Storage;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Onnx;

namespace Microsoft.ML.Lora.Hosting.Exports;

/// <summary>
/// <c>POST /jobs/{id}/export-onnx</c>: the job's base model with its adapter merged, exported to
/// <c>&lt;data&gt;/jobs/&lt;id&gt;/onnx/model.onnx</c> (plus <c>model.onnx.data</c> with external data). The folder
/// is written under a temporary name and renamed, so a download sees a whole export or none.
/// </summary>
internal sealed class JobOnnxExporter(JobStore store, TrainingJobExecutor executor, ILogger<JobOnnxExporter> logger) : IDisposable
{
    /// <summary>File name of the exported model.</summary>
    public const string FileName = "model.onnx";

    private readonly SemaphoreSlim gate = new(1, 1);

    /// <summary>Folder of the job's export.</summary>
    public string ExportDirectory(string jobId) => Path.Combine(executor.JobDirectory(jobId), "onnx");

    /// <summary>Exports the job's merged model; returns the folder.</summary>
    public async Task<string> ExportAsync(string jobId, bool externalData, CancellationToken cancellationToken)
    {
        var job = store.Get(jobId) ?? throw new ApiException(404, $"job '{jobId}' not found");
        if (job.State != JobState.Succeeded)
        {
            throw new ApiException(409, $"job '{jobId}' is {job.State.ToWire()}; it can be exported once it has succeeded");
        }

        var paths = store.GetPaths(jobId)!;
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            return await Task.Run(() => Export(jobId, paths, externalData), cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            gate.Release();
        }
    }

    public void Dispose() => gate.Dispose();

    private string Export(string jobId, JobPaths paths, bool externalData)
    {
        string final = ExportDirectory(jobId);
        string temp = final + $".{Guid.NewGuid():N}.tmp";
        try
        {
            Directory.CreateDirectory(temp);
            using (var model = LlamaForCausalLM.Load(paths.ModelDirectory))
            {
                model.LoadAdapter(paths.OutputDirectory);
                model.MergeAndUnload();
                LlamaOnnxExporter.Export(model, Path.Combine(temp, FileName), new OnnxExportOptions { ExternalData = externalData });
            }

            if (Directory.Exists(final))
            {
                Directory.Delete(final, recursive: true);
            }

            Directory.Move(temp, final);
            logger.LogInformation("Job {JobId}: ONNX export written to {Directory}", jobId, final);
            return final;
        }
        catch
        {
            if (Directory.Exists(temp))
            {
                Directory.Delete(temp, recursive: true);
            }

            throw;
        }
    }
}
