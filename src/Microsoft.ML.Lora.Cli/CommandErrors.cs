using Microsoft.ML.Lora.TorchSharp;

namespace Microsoft.ML.Lora.Cli;

/// <summary>Turns the library's exceptions into one clear line on stderr and a non-zero exit code.</summary>
internal static class CommandErrors
{
    /// <summary>Exit code for bad input (files, options, data).</summary>
    public const int BadInput = 1;

    /// <summary>Runs <paramref name="body"/>; expected failures print "error: message" and return <see cref="BadInput"/>.</summary>
    public static int Guard(TextWriter error, Func<int> body)
    {
        try
        {
            return body();
        }
        catch (Exception e) when (IsBadInput(e))
        {
            error.WriteLine($"error: {OneLine(e)}");
            return BadInput;
        }
    }

    /// <summary>As <see cref="Guard"/>, for an asynchronous step (starting a host).</summary>
    public static async Task<int> GuardAsync(TextWriter error, Func<Task> body)
    {
        try
        {
            await body().ConfigureAwait(false);
            return 0;
        }
        catch (Exception e) when (IsBadInput(e))
        {
            error.WriteLine($"error: {OneLine(e)}");
            return BadInput;
        }
    }

    private static bool IsBadInput(Exception e) =>
        e is InvalidDataException or IOException or ArgumentException or NotSupportedException or UnauthorizedAccessException or InvalidOperationException or TorchBackendUnavailableException;

    // The library's option names and the flags that set them (the same flag in every command), so that an error about
    // an option names the flag the user typed.
    private static readonly Dictionary<string, string> Flags = new(StringComparer.Ordinal)
    {
        ["Rank"] = "--rank", ["Alpha"] = "--alpha", ["Dropout"] = "--dropout",
        ["LearningRate"] = "--lr", ["Epochs"] = "--epochs", ["MaxSteps"] = "--max-steps", ["BatchSize"] = "--batch-size",
        ["GradientAccumulationSteps"] = "--grad-accum", ["MaxSequenceLength"] = "--seq-len", ["WarmupRatio"] = "--warmup-ratio",
        ["WeightDecay"] = "--weight-decay", ["ValidationFraction"] = "--val-fraction", ["EvalEverySteps"] = "--eval-every",
        ["CheckpointEverySteps"] = "--checkpoint-every",
        ["Beta"] = "--beta", ["LabelSmoothing"] = "--label-smoothing", ["RpoAlpha"] = "--rpo-alpha",
        ["GroupSize"] = "--group-size", ["MaxCompletionLength"] = "--max-new-tokens", ["KlBeta"] = "--kl-beta",
        ["Iterations"] = "--num-iterations", ["MaxNewTokens"] = "--max-new-tokens", ["TopK"] = "--top-k", ["TopP"] = "--top-p",
        ["Threads"] = "--threads",
    };

    // ArgumentException appends " (Parameter 'x')" and, out of range, a second line with the value:
    // fold both into one readable line, led by the flag when the parameter is an option that one sets.
    private static string OneLine(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } name } argument)
        {
            message = argument.Message.Split('\n')[0].Replace($" (Parameter '{name}')", string.Empty, StringComparison.Ordinal);
            if (e is ArgumentOutOfRangeException { ActualValue: { } value })
            {
                message += string.Create(System.Globalization.CultureInfo.InvariantCulture, $" ({name} = {value})");
            }

            if (Flags.TryGetValue(name, out string? flag))
            {
                message = $"{flag}: {message}";
            }
        }

        return message.ReplaceLineEndings(" ");
    }
}
