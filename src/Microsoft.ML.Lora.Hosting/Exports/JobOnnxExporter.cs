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
/// <c>&lt;data&gt;/jobs/&lt;id&gt;/onnx-&lt;version&gt;/model.onnx</c> (plus <c>model.onnx.data</c> with external data).
/// <c>onnx.current</c> names the current version and is replaced atomically once a new export is whole, so a
/// download sees the previous export or the new one, never none; the export before the previous is deleted.
/// </summary>
internal sealed class JobOnnxExporter(JobStore store, TrainingJobExecutor executor, ILogger<JobOnnxExporter> logger) : IDisposable
{
    /// <summary>File name of the exported model.</summary>
    public const string FileName = "model.onnx";

    private readonly SemaphoreSlim gate = new(1, 1);

    private const string Pointer = "onnx.current";

    /// <summary>Folder of the job's current export (it may not exist yet).</summary>
    public string ExportDirectory(string jobId)
    {
        string job = executor.JobDirectory(jobId);
        string pointer = Path.Combine(job, Pointer);
        return File.Exists(pointer) ? Path.Combine(job, File.ReadAllText(pointer).Trim()) : Path.Combine(job, "onnx");
    }

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
        string job = executor.JobDirectory(jobId);
        string previous = ExportDirectory(jobId);
        string version = $"onnx-{DateTime.UtcNow:yyyyMMddHHmmssfff}-{Guid.NewGuid():N}";
        string temp = Path.Combine(job, version);
        try
        {
            Directory.CreateDirectory(temp);
            using (var model = LlamaForCausalLM.Load(paths.ModelDirectory))
            {
                model.LoadAdapter(paths.OutputDirectory);
                model.MergeAndUnload();
                LlamaOnnxExporter.Export(model, Path.Combine(temp, FileName), new OnnxExportOptions { ExternalData = externalData });
            }

            // Switch the pointer in one rename; then drop every export but this one and the previous (which a
            // download that started before the switch may still be reading).
            string pointerTemp = Path.Combine(job, $"{Pointer}.{Guid.NewGuid():N}.tmp");
            File.WriteAllText(pointerTemp, version);
            File.Move(pointerTemp, Path.Combine(job, Pointer), overwrite: true);
            foreach (string old in Directory.GetDirectories(job, "onnx*").Where(d => d != temp && d != previous))
            {
                Directory.Delete(old, recursive: true);
            }

            logger.LogInformation("Job {JobId}: ONNX export written to {Directory}", jobId, temp);
            return temp;
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
