namespace Microsoft.ML.Lora.Hosting.Jobs;

/// <summary>Checks a job request: options by field (400) and paths against the configured roots (403 on escape).</summary>
internal static class JobRequestValidator
{
    /// <summary>The resolved paths and plan, or null with <paramref name="errors"/> filled.</summary>
    /// <exception cref="PathEscapeException">A path leaves its root.</exception>
    public static (JobPaths Paths, JobPlan Plan)? Validate(JobRequest request, LoraTrainingOptions options, FieldErrors errors)
    {
        var plan = JobPlan.Build(request, options.CheckpointEverySteps, errors);
        string? model = Required(request.Model, "model", errors);
        string? dataset = Required(request.Dataset, "dataset", errors);
        string? output = Required(request.Output, "output", errors);

        string? modelDir = model is null ? null : RootedPath.Resolve(options.ResolvedModelRoot, model, "model");
        string? datasetPath = dataset is null ? null : RootedPath.Resolve(options.ResolvedDatasetRoot, dataset, "dataset");
        string? outputDir = output is null ? null : RootedPath.Resolve(options.ResolvedOutputRoot, output, "output");

        if (modelDir is not null)
        {
            errors.Require(File.Exists(Path.Combine(modelDir, "config.json")), "model", $"'{model}' is not a model folder under the model root (no config.json)");
        }

        if (datasetPath is not null)
        {
            errors.Require(File.Exists(datasetPath), "dataset", $"'{dataset}' is not a file under the dataset root");
        }

        if (outputDir is not null)
        {
            if (outputDir == RootedPath.RealPath(options.ResolvedOutputRoot))
            {
                errors.Add("output", "must name a folder inside the output root, not the root itself");
            }
            else if (File.Exists(outputDir) || (Directory.Exists(outputDir) && Directory.EnumerateFileSystemEntries(outputDir).Any()))
            {
                errors.Add("output", $"'{output}' already exists and is not an empty folder; choose a new name");
            }
        }

        return errors.IsEmpty ? (new JobPaths(modelDir!, datasetPath!, outputDir!), plan!) : null;
    }

    private static string? Required(string? value, string field, FieldErrors errors)
    {
        if (string.IsNullOrWhiteSpace(value))
        {
            errors.Add(field, "is required");
            return null;
        }

        if (value.Contains('\0', StringComparison.Ordinal))
        {
            errors.Add(field, "must not contain NUL characters");
            return null;
        }

        return value;
    }
}
