using System.Buffers;
using System.Text.Json;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Appends one JSON object per line to a <c>metrics.jsonl</c> file and flushes after each, so a crash
/// loses at most the line being written. After a resume the file continues; records of steps after the
/// checkpoint written by the interrupted run stay, so readers should keep the last record per step.
/// </summary>
internal sealed class MetricsLog : IDisposable
{
    private readonly FileStream stream;
    private readonly ArrayBufferWriter<byte> buffer = new();

    private MetricsLog(FileStream stream) => this.stream = stream;

    public static MetricsLog Open(string path)
    {
        string full = Path.GetFullPath(path);
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(full)!);
            return new MetricsLog(new FileStream(full, FileMode.Append, FileAccess.Write, FileShare.Read));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new IOException($"cannot open the metrics log '{full}' for appending: {e.Message}", e);
        }
    }

    public void Step(TrainingProgress p) => Write(json =>
    {
        json.WriteString("type", "step");
        json.WriteNumber("step", p.Step);
        json.WriteNumber("total_steps", p.TotalSteps);
        Number(json, "epoch", p.Epoch);
        Number(json, "loss", p.Loss);
        Number(json, "learning_rate", p.LearningRate);
        Number(json, "grad_norm", p.GradNorm);
        json.WriteNumber("tokens", p.Tokens);
        Number(json, "tokens_per_second", p.TokensPerSecond);
        if (p.Preference is { } pref)
        {
            Preference(json, "", pref);
        }

        if (p.Grpo is { } g)
        {
            json.WriteNumber("completions", g.Completions);
            Number(json, "reward", g.RewardMean);
            Number(json, "reward_std", g.RewardStd);
            Number(json, "completion_length", g.CompletionLength);
            Number(json, "clip_ratio", g.ClipRatio);
            Number(json, "kl", g.Kl);
        }
    });

    /// <summary>A preference run's evaluation: mean loss, margin and accuracy over the validation pairs.</summary>
    public void PreferenceEvaluation(int step, double epoch, PreferenceResult result) => Write(json =>
    {
        json.WriteString("type", "eval");
        json.WriteNumber("step", step);
        Number(json, "epoch", epoch);
        Number(json, "validation_loss", result.Loss);
        Preference(json, "validation_", result);
    });

    // TRL's names: rewards/margins, rewards/accuracies, rewards/chosen, rewards/rejected, logps/chosen, logps/rejected.
    private static void Preference(Utf8JsonWriter json, string prefix, PreferenceResult r)
    {
        json.WriteNumber(prefix + "pairs", r.Pairs);
        Number(json, prefix + "reward_margin", r.Margin);
        Number(json, prefix + "reward_accuracy", r.Accuracy);
        Number(json, prefix + "reward_chosen", r.ChosenRewardSum / r.Pairs);
        Number(json, prefix + "reward_rejected", r.RejectedRewardSum / r.Pairs);
        Number(json, prefix + "logps_chosen", r.ChosenLogProbSum / r.Pairs);
        Number(json, prefix + "logps_rejected", r.RejectedLogProbSum / r.Pairs);
    }

    /// <summary>A GRPO run's evaluation: the rewards of completions sampled for the held-out prompts.</summary>
    public void GrpoEvaluation(int step, double epoch, GrpoStepStats result) => Write(json =>
    {
        json.WriteString("type", "eval");
        json.WriteNumber("step", step);
        Number(json, "epoch", epoch);
        json.WriteNumber("validation_completions", result.Completions);
        Number(json, "validation_reward", result.RewardMean);
        Number(json, "validation_reward_std", result.RewardStd);
        Number(json, "validation_completion_length", result.CompletionLength);
    });

    public void Evaluation(int step, double epoch, double validationLoss, long tokens) => Write(json =>
    {
        json.WriteString("type", "eval");
        json.WriteNumber("step", step);
        Number(json, "epoch", epoch);
        Number(json, "validation_loss", validationLoss);
        json.WriteNumber("validation_tokens", tokens);
    });

    public void Dispose() => stream.Dispose();

    // JSON has no NaN or infinity; such values are written as null.
    private static void Number(Utf8JsonWriter json, string name, double value)
    {
        if (double.IsFinite(value))
        {
            json.WriteNumber(name, value);
        }
        else
        {
            json.WriteNull(name);
        }
    }

    private void Write(Action<Utf8JsonWriter> body)
    {
        buffer.ResetWrittenCount();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            body(json);
            json.WriteEndObject();
        }

        stream.Write(buffer.WrittenSpan);
        stream.WriteByte((byte)'\n');
        stream.Flush();
    }
}
