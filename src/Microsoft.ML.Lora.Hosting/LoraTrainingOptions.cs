using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Hosting;

/// <summary>
/// Settings of the hosted training service (bound through <c>IOptions&lt;LoraTrainingOptions&gt;</c>).
/// Every path a request names is resolved under one of the roots; the roots default to folders of
/// <see cref="DataDirectory"/>.
/// </summary>
public sealed class LoraTrainingOptions
{
    /// <summary>Folder of the job database (<c>jobs.db</c>) and of each job's checkpoints (<c>jobs/&lt;id&gt;/</c>). Default <c>./lora-data</c>.</summary>
    public string DataDirectory { get; set; } = "lora-data";

    /// <summary>Folder that base model folders are resolved under. Default <c>&lt;DataDirectory&gt;/models</c>.</summary>
    public string? ModelRoot { get; set; }

    /// <summary>Folder that dataset files are resolved under. Default <c>&lt;DataDirectory&gt;/datasets</c>.</summary>
    public string? DatasetRoot { get; set; }

    /// <summary>Folder that receives each job's adapter folder (the request's <c>output</c> name). Default <c>&lt;DataDirectory&gt;/outputs</c>.</summary>
    public string? OutputRoot { get; set; }

    /// <summary>
    /// Bearer token every endpoint requires (header <c>Authorization: Bearer &lt;token&gt;</c> or query
    /// <c>access_token</c>); null or empty (default) = no authentication, which is only safe on loopback.
    /// </summary>
    public string? Token { get; set; }

    /// <summary>
    /// Addresses <see cref="LoraTrainingServer"/> (and <c>lora serve</c>) listen on, ';'-separated. Default
    /// <c>http://127.0.0.1:5117</c>: loopback only. A host of your own that calls <c>AddLoraTraining</c> binds as it configures itself.
    /// </summary>
    public string Urls { get; set; } = LoraTrainingServer.DefaultUrls;

    /// <summary>Jobs that train at the same time. Default 1 (training already uses every core).</summary>
    public int MaxConcurrentJobs { get; set; } = 1;

    /// <summary>Largest request body accepted, in bytes; larger ones get 413. Default 1 MiB (job requests are small JSON).</summary>
    public long MaxRequestBodyBytes { get; set; } = 1 << 20;

    /// <summary>Checkpoint interval in optimizer steps for requests that give none; 0 = only at shutdown. Default 50.</summary>
    public int CheckpointEverySteps { get; set; } = 50;

    /// <summary>Checkpoints kept per job (the newest); older ones are deleted as new ones are written. Default 2.</summary>
    public int CheckpointsToKeep { get; set; } = 2;

    /// <summary>
    /// Where jobs train and <c>POST /generate</c> runs: <see cref="Backend.Native"/> (the CPU engine, default) or a
    /// device backend made by the app, e.g. <c>Backends.Create("torch", "cuda:0")</c> from Microsoft.ML.Lora.TorchSharp
    /// (<c>lora serve --backend/--device</c>). Set in code; configuration files cannot bind it.
    /// </summary>
    [System.Text.Json.Serialization.JsonIgnore]
    public Backend Backend { get; set; } = Backend.Native;

    /// <summary>Longest generation a <c>POST /generate</c> may ask for. Default 512 tokens.</summary>
    public int MaxGenerationTokens { get; set; } = 512;

    /// <summary>The model root as an absolute path.</summary>
    public string ResolvedModelRoot => Path.GetFullPath(ModelRoot ?? Path.Combine(DataDirectory, "models"));

    /// <summary>The dataset root as an absolute path.</summary>
    public string ResolvedDatasetRoot => Path.GetFullPath(DatasetRoot ?? Path.Combine(DataDirectory, "datasets"));

    /// <summary>The output root as an absolute path.</summary>
    public string ResolvedOutputRoot => Path.GetFullPath(OutputRoot ?? Path.Combine(DataDirectory, "outputs"));

    /// <summary>Throws <see cref="ArgumentException"/> naming the first invalid setting.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(DataDirectory))
        {
            throw new ArgumentException("LoraTrainingOptions.DataDirectory is empty: set the folder of the job database", nameof(DataDirectory));
        }

        if (MaxConcurrentJobs < 1)
        {
            throw new ArgumentException($"LoraTrainingOptions.MaxConcurrentJobs = {MaxConcurrentJobs} is invalid: expected at least 1", nameof(MaxConcurrentJobs));
        }

        if (MaxRequestBodyBytes < 1024)
        {
            throw new ArgumentException($"LoraTrainingOptions.MaxRequestBodyBytes = {MaxRequestBodyBytes} is invalid: expected at least 1024", nameof(MaxRequestBodyBytes));
        }

        if (CheckpointEverySteps < 0)
        {
            throw new ArgumentException($"LoraTrainingOptions.CheckpointEverySteps = {CheckpointEverySteps} is invalid: expected ≥ 0", nameof(CheckpointEverySteps));
        }

        if (CheckpointsToKeep < 1)
        {
            throw new ArgumentException($"LoraTrainingOptions.CheckpointsToKeep = {CheckpointsToKeep} is invalid: expected at least 1 (the one a restart resumes from)", nameof(CheckpointsToKeep));
        }

        if (MaxGenerationTokens < 1)
        {
            throw new ArgumentException($"LoraTrainingOptions.MaxGenerationTokens = {MaxGenerationTokens} is invalid: expected at least 1", nameof(MaxGenerationTokens));
        }
    }
}
