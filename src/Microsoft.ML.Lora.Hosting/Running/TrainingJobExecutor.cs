using System.Text.Json;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Microsoft.ML.Lora.Hosting.Jobs;
using Microsoft.ML.Lora.Hosting.Storage;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Hosting.Running;

/// <summary>
/// Runs one job start to finish, as <c>lora train</c> does: load the base model (NF4 if asked), read the
/// data with the model's tokenizer, attach the adapter, train (from the job's latest checkpoint when there
/// is one), and write the PEFT adapter folder atomically into the job's output. When the host stops, the
/// run is cancelled between micro-batches and a checkpoint of the last completed step is written, so the
/// next start continues exactly where this one stopped.
/// </summary>
internal sealed class TrainingJobExecutor(JobStore store, IOptions<LoraTrainingOptions> options, ILogger<TrainingJobExecutor> logger)
{
    private static readonly string[] AdapterFiles = ["adapter_config.json", "adapter_model.safetensors"];

    /// <summary>Folder of the job's own files (checkpoints, ONNX export).</summary>
    public string JobDirectory(string jobId) => Path.GetFullPath(Path.Combine(options.Value.DataDirectory, "jobs", jobId));

    /// <summary>Folder of the job's checkpoints.</summary>
    public string CheckpointDirectory(string jobId) => Path.Combine(JobDirectory(jobId), "checkpoints");

    /// <summary>Trains the job; throws <see cref="OperationCanceledException"/> when either token is cancelled.</summary>
    /// <param name="jobId">The job.</param>
    /// <param name="userCancel">Cancelled by the API: the run stops, no checkpoint is added.</param>
    /// <param name="shutdown">Cancelled when the host stops: the run stops and checkpoints its last completed step.</param>
    public void Run(string jobId, CancellationToken userCancel, CancellationToken shutdown)
    {
        var job = store.Get(jobId) ?? throw new InvalidOperationException($"job '{jobId}' is not in the store");
        var paths = store.GetPaths(jobId)!;

        // Checked at submission, and again now: a file swapped for a link to elsewhere while the job waited
        // (or roots moved by a new configuration) must not be read.
        RequireInside(options.Value.ResolvedModelRoot, paths.ModelDirectory, "model");
        RequireInside(options.Value.ResolvedDatasetRoot, paths.DatasetPath, "dataset");
        RequireInside(options.Value.ResolvedOutputRoot, paths.OutputDirectory, "output");
        var request = job.Request.Deserialize<JobRequest>(HostingJson.Requests)!;
        var errors = new FieldErrors();
        var plan = JobPlan.Build(request, options.Value.CheckpointEverySteps, errors)
            ?? throw new InvalidDataException($"job '{jobId}': stored request is no longer valid: {string.Join("; ", errors.ToDictionary().Select(e => $"{e.Key}: {string.Join(", ", e.Value)}"))}");
        string checkpoints = CheckpointDirectory(jobId);
        var training = plan.Training with { CheckpointDirectory = checkpoints };

        using var linked = CancellationTokenSource.CreateLinkedTokenSource(userCancel, shutdown);
        var token = linked.Token;
        using var model = LlamaForCausalLM.Load(paths.ModelDirectory, cancellationToken: token);
        if (plan.Quantize)
        {
            model.QuantizeNf4(plan.DoubleQuant, token);
        }

        model.To(options.Value.Backend);
        var rows = LoadRows(paths, plan, model.Config.VocabSize, token);
        model.AddAdapter(plan.Lora, seed: training.Seed);
        string? latest = Checkpoint.FindLatest(checkpoints);
        using var trainer = latest is null ? new Trainer(model, training) : Trainer.Resume(model, latest);
        if (latest is null)
        {
            logger.LogInformation("Job {JobId}: training {Rows} rows from {Dataset}", jobId, rows.Count, paths.DatasetPath);
        }
        else
        {
            logger.LogInformation("Job {JobId}: resuming from {Checkpoint} (step {Step})", jobId, latest, trainer.GlobalStep);
        }

        try
        {
            var recorder = new JobProgressRecorder(store, jobId, checkpoints, options.Value.CheckpointsToKeep);
            if (plan.Training.Grpo is not null)
            {
                var (reward, _) = GrpoRewards.Parse(plan.Rewards, allowCommands: false);
                trainer.Train(rows, reward, Tokenizer.Load(paths.ModelDirectory), progress: recorder, cancellationToken: token);
            }
            else
            {
                trainer.Train(rows, null, recorder, token);
            }
        }
        catch (OperationCanceledException) when (shutdown.IsCancellationRequested && !userCancel.IsCancellationRequested)
        {
            if (trainer.GlobalStep > 0)
            {
                string saved = trainer.SaveCheckpoint(checkpoints, CancellationToken.None);
                logger.LogInformation("Job {JobId}: host stopping; checkpoint {Checkpoint} written, the job resumes on the next start", jobId, saved);
            }

            throw;
        }

        token.ThrowIfCancellationRequested();
        RequireInside(options.Value.ResolvedOutputRoot, paths.OutputDirectory, "output");
        SaveAdapter(model, paths.OutputDirectory, request.Model!, plan.Lora);
        logger.LogInformation("Job {JobId}: adapter written to {Output}", jobId, paths.OutputDirectory);
    }

    private static void RequireInside(string root, string path, string field)
    {
        if (!RootedPath.IsInside(RootedPath.RealPath(root), RootedPath.RealPath(path)))
        {
            throw new InvalidDataException($"{field} '{path}' now leads outside the configured root (a symbolic link?); the job does not read it");
        }
    }

    private static IReadOnlyList<TokenRow> LoadRows(JobPaths paths, JobPlan plan, int vocabSize, CancellationToken token)
    {
        var tokenizer = File.Exists(Path.Combine(paths.ModelDirectory, "tokenizer.json")) ? Tokenizer.Load(paths.ModelDirectory) : null;
        if (plan.Training.Grpo is not null)
        {
            return PromptDataset.Load(paths.DatasetPath, tokenizer ?? Tokenizer.Load(paths.ModelDirectory), ResolveTemplate(plan.ChatTemplateName, paths.ModelDirectory), token);
        }

        if (plan.Training.Preference is not null)
        {
            // Preference pairs are text: the model's tokenizer is required.
            return PreferenceDataset.Load(paths.DatasetPath, tokenizer ?? Tokenizer.Load(paths.ModelDirectory), ResolveTemplate(plan.ChatTemplateName, paths.ModelDirectory), token);
        }

        var data = plan.Data with { ChatTemplate = ResolveTemplate(plan.ChatTemplateName, paths.ModelDirectory), VocabSize = vocabSize };
        return TextDataset.Load(paths.DatasetPath, tokenizer, data, cancellationToken: token);
    }

    // The named template, else the one the model folder declares, else none (messages rows then fail naming the option).
    private static ChatTemplate? ResolveTemplate(string? name, string modelDirectory)
    {
        if (name is not null)
        {
            return ChatTemplate.FromName(name);
        }

        if (!File.Exists(Path.Combine(modelDirectory, "chat_template.jinja")) && !File.Exists(Path.Combine(modelDirectory, "tokenizer_config.json")))
        {
            return null;
        }

        try
        {
            return ChatTemplate.Resolve(null, modelDirectory);
        }
        catch (Exception e) when (e is InvalidDataException or FileNotFoundException)
        {
            return null;
        }
    }

    // Written whole under a temporary sibling name and renamed, so the output folder holds a complete adapter or nothing.
    private static void SaveAdapter(LlamaForCausalLM model, string output, string baseModel, LoraOptions lora)
    {
        string parent = Path.GetDirectoryName(output)!;
        Directory.CreateDirectory(parent);
        string temp = Path.Combine(parent, $".{Path.GetFileName(output)}.{Guid.NewGuid():N}.tmp");
        try
        {
            model.SaveAdapter(temp, baseModelNameOrPath: baseModel, options: lora);
            if (Directory.Exists(output))
            {
                // An empty folder made in advance, or the adapter of a run that was killed between writing it
                // and recording success, is replaced; anything else is someone's data and stays.
                if (Directory.EnumerateFileSystemEntries(output).Any(e => !AdapterFiles.Contains(Path.GetFileName(e))))
                {
                    throw new IOException($"output folder '{output}' received other files while the job ran; the adapter is not written over them");
                }

                Directory.Delete(output, recursive: true);
            }

            Directory.Move(temp, output);
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
