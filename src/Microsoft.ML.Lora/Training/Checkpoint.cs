using System.Globalization;
using System.Text.RegularExpressions;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// A training checkpoint: a folder <c>checkpoint-&lt;step&gt;</c> holding
/// <c>trainable_parameters.safetensors</c> (each trainable parameter's F32 value under its name),
/// <c>optimizer.safetensors</c> (<c>exp_avg.&lt;name&gt;</c>, <c>exp_avg_sq.&lt;name&gt;</c> as PyTorch
/// names AdamW's moments, and the I64 <c>step</c>) and <c>trainer_state.json</c> (and, for GRPO between the steps of
/// one batch of samples, those samples: <c>grpo_generation.safetensors</c>). The folder is written
/// whole under a temporary name in the same parent and renamed into place, so a reader sees a complete
/// checkpoint or none.
/// </summary>
public static partial class Checkpoint
{
    /// <summary>Trainable parameter values.</summary>
    public const string ParametersFileName = "trainable_parameters.safetensors";

    /// <summary>AdamW moments and step count.</summary>
    public const string OptimizerFileName = "optimizer.safetensors";

    /// <summary>Counters, options and losses.</summary>
    public const string StateFileName = "trainer_state.json";

    /// <summary>Name of the AdamW step-count tensor in <see cref="OptimizerFileName"/>.</summary>
    public const string StepTensorName = "step";

    /// <summary>The folder name of the checkpoint after <paramref name="step"/> optimizer steps.</summary>
    public static string FolderName(int step) => "checkpoint-" + step.ToString(CultureInfo.InvariantCulture);

    /// <summary>The complete checkpoint with the highest step in <paramref name="directory"/>, or null if none.</summary>
    public static string? FindLatest(string directory)
    {
        if (!Directory.Exists(directory))
        {
            return null;
        }

        return Directory.EnumerateDirectories(directory)
            .Select(d => (Path: d, Match: FolderPattern().Match(Path.GetFileName(d))))
            .Where(x => x.Match.Success && int.TryParse(x.Match.Groups[1].Value, NumberStyles.None, CultureInfo.InvariantCulture, out _)
                && File.Exists(Path.Combine(x.Path, StateFileName)))
            .OrderByDescending(x => int.Parse(x.Match.Groups[1].Value, CultureInfo.InvariantCulture))
            .Select(x => x.Path)
            .FirstOrDefault();
    }

    /// <summary>
    /// Writes <c>checkpoint-&lt;step&gt;</c> into <paramref name="directory"/> atomically, replacing an
    /// existing one of the same step. On failure nothing is left behind and the error names the path.
    /// </summary>
    internal static string Write(string directory, TrainerState state, AdamW optimizer, CancellationToken cancellationToken, byte[]? adapterConfigJson = null, GrpoGeneration? generation = null)
    {
        string parent = Path.GetFullPath(directory);
        string final = Path.Combine(parent, FolderName(state.GlobalStep));
        string temp = Path.Combine(parent, $".{FolderName(state.GlobalStep)}.{Guid.NewGuid():N}.tmp");
        try
        {
            Directory.CreateDirectory(parent);
            Directory.CreateDirectory(temp);
            var parameters = optimizer.Parameters;
            SafeTensorsWriter.Write(
                Path.Combine(temp, ParametersFileName),
                parameters.Select(p => SafeTensorEntry.FromTensor(p.Name, p.Value)),
                cancellationToken: cancellationToken);
            var moments = new List<SafeTensorEntry> { SafeTensorEntry.FromInt64(StepTensorName, [1], [optimizer.StepCount]) };
            for (int i = 0; i < parameters.Count; i++)
            {
                moments.Add(SafeTensorEntry.FromTensor("exp_avg." + parameters[i].Name, optimizer.ExpAvg(i)));
                moments.Add(SafeTensorEntry.FromTensor("exp_avg_sq." + parameters[i].Name, optimizer.ExpAvgSq(i)));
            }

            SafeTensorsWriter.Write(Path.Combine(temp, OptimizerFileName), moments, cancellationToken: cancellationToken);
            byte[] json = state.ToJson(final);
            AtomicFile.Write(Path.Combine(temp, StateFileName), s => s.Write(json));
            if (adapterConfigJson is not null)
            {
                File.WriteAllBytes(Path.Combine(temp, PeftAdapterConfig.FileName), adapterConfigJson);
            }

            if (generation is not null)
            {
                SafeTensorsWriter.Write(Path.Combine(temp, GrpoGeneration.FileName), generation.Entries(), cancellationToken: cancellationToken);
            }

            Publish(temp, final);
            return final;
        }
        catch (Exception e)
        {
            TryDeleteDirectory(temp);
            if (e is IOException or UnauthorizedAccessException)
            {
                throw new IOException($"cannot write checkpoint of step {state.GlobalStep} to '{final}': {e.Message}. Nothing was left behind; check that '{parent}' is a writable folder with free space", e);
            }

            throw;
        }
    }

    /// <summary>
    /// The training options a checkpoint's run was started with (output paths resolved against the checkpoint
    /// folder): the starting point for resuming it with some options changed (see <see cref="Trainer.Resume"/>).
    /// </summary>
    public static TrainingOptions Options(string checkpointDirectory) => ReadState(checkpointDirectory).Options;

    /// <summary>
    /// The LoRA options of the adapter a checkpoint's run trained (its <c>adapter_config.json</c>, in PEFT's form), or
    /// null for a full fine-tuning run or a checkpoint written without it.
    /// </summary>
    public static LoraOptions? AdapterOptions(string checkpointDirectory)
    {
        string path = Path.Combine(checkpointDirectory, PeftAdapterConfig.FileName);
        if (!File.Exists(path))
        {
            return null;
        }

        var config = PeftAdapterConfig.Read(path);
        return config.ToOptions(config.TargetModules ?? [LoraOptions.AllLinear]);
    }

    /// <summary>Reads <c>trainer_state.json</c> of a checkpoint folder.</summary>
    internal static TrainerState ReadState(string checkpointDirectory)
    {
        RequireFolder(checkpointDirectory);
        return TrainerState.Read(Path.Combine(checkpointDirectory, StateFileName));
    }

    /// <summary>
    /// Copies the saved values into <paramref name="trainable"/> (same names and shapes required) and
    /// returns a restored optimizer over them.
    /// </summary>
    internal static AdamW Restore(string checkpointDirectory, IReadOnlyList<Parameter> trainable, TrainingOptions options)
    {
        RequireFolder(checkpointDirectory);
        string parametersPath = Path.Combine(checkpointDirectory, ParametersFileName);
        string optimizerPath = Path.Combine(checkpointDirectory, OptimizerFileName);
        using var values = OpenFile(parametersPath);
        using var moments = OpenFile(optimizerPath);
        CheckMatch(values, trainable);

        var optimizer = new AdamW(trainable, options.Beta1, options.Beta2, options.Epsilon, options.WeightDecay);
        try
        {
            long[] step = moments.ReadInt64(StepTensorName);
            if (step.Length != 1 || step[0] < 0)
            {
                throw new InvalidDataException($"{optimizerPath}: '{StepTensorName}' must hold one non-negative count");
            }

            for (int i = 0; i < trainable.Count; i++)
            {
                var p = trainable[i];
                CopyExact(values, p.Name, p.Value);
                CopyExact(moments, "exp_avg." + p.Name, optimizer.ExpAvg(i));
                CopyExact(moments, "exp_avg_sq." + p.Name, optimizer.ExpAvgSq(i));
            }

            optimizer.StepCount = step[0];
            return optimizer;
        }
        catch
        {
            optimizer.Dispose();
            throw;
        }
    }

    private static void CheckMatch(SafeTensorsFile values, IReadOnlyList<Parameter> trainable)
    {
        var problems = new List<string>();
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (var p in trainable)
        {
            names.Add(p.Name);
            if (!values.Contains(p.Name))
            {
                problems.Add($"'{p.Name}' is trainable in the model but not in the checkpoint");
            }
            else if (!values.Info(p.Name).Shape.AsSpan().SequenceEqual(p.Value.Shape))
            {
                problems.Add($"'{p.Name}' has shape {values.Info(p.Name).ShapeText} in the checkpoint but {Tensor.Format(p.Value.Shape)} in the model");
            }
        }

        problems.AddRange(values.Tensors.Keys.Where(k => !names.Contains(k)).Order(StringComparer.Ordinal).Select(k => $"'{k}' is in the checkpoint but not trainable in the model"));
        if (problems.Count > 0)
        {
            const int Shown = 8;
            string more = problems.Count > Shown ? $"; and {problems.Count - Shown} more" : string.Empty;
            throw new InvalidDataException($"{values.Path}: the checkpoint's trainable parameters do not match the model's: {string.Join("; ", problems.Take(Shown))}{more}. "
                + "Was it written for another model, or with other parameters trainable (e.g. other LoRA targets or rank)?");
        }
    }

    private static void CopyExact(SafeTensorsFile file, string name, Tensor destination)
    {
        if (!file.Contains(name))
        {
            throw new InvalidDataException($"{file.Path}: tensor '{name}' is missing");
        }

        var info = file.Info(name);
        if (info.DType != SafeTensorsDTypes.F32 || !info.Shape.AsSpan().SequenceEqual(destination.Shape))
        {
            throw new InvalidDataException($"{file.Path}: tensor '{name}' is {info.DType} {info.ShapeText}; expected F32 {Tensor.Format(destination.Shape)}");
        }

        if (destination.IsHost)
        {
            file.GetBytes(name).CopyTo(destination.AsBytes());
            return;
        }

        using var host = Tensor.Empty(DType.F32, destination.Shape.ToArray());
        file.GetBytes(name).CopyTo(host.AsBytes());
        destination.Backend.CopyFromHost(host, destination);
    }

    private static SafeTensorsFile OpenFile(string path)
    {
        if (!File.Exists(path))
        {
            throw new FileNotFoundException($"'{Path.GetDirectoryName(path)}' is not a complete checkpoint: {Path.GetFileName(path)} not found", path);
        }

        return SafeTensorsFile.Open(path);
    }

    private static void RequireFolder(string checkpointDirectory)
    {
        if (!Directory.Exists(checkpointDirectory))
        {
            throw new DirectoryNotFoundException($"checkpoint folder '{checkpointDirectory}' not found");
        }
    }

    private static void Publish(string temp, string final)
    {
        if (!Directory.Exists(final))
        {
            Directory.Move(temp, final);
            return;
        }

        // Replacing a checkpoint of the same step (a rerun): move the old one aside first, so that at
        // every moment one complete checkpoint-<step> exists or is recoverable under the aside name.
        string aside = final + $".{Guid.NewGuid():N}.old";
        Directory.Move(final, aside);
        Directory.Move(temp, final);
        TryDeleteDirectory(aside);
    }

    private static void TryDeleteDirectory(string path)
    {
        try
        {
            if (Directory.Exists(path))
            {
                Directory.Delete(path, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The original error matters more; the leftover has a recognisable temporary name.
        }
    }

    [GeneratedRegex(@"^checkpoint-(\d+)$")]
    private static partial Regex FolderPattern();
}
