using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Microsoft.ML.Lora.Training;

/// <summary>
/// Built-in GRPO rewards, and their spelling on the command line (<see cref="Parse"/>):
/// <c>regex:PATTERN</c> (1 when the completion matches), <c>exact:FIELD</c> (1 when the trimmed completion equals the
/// row's field), <c>length:N</c> (1 − |characters − N| / N, at least 0), <c>cmd:COMMAND</c> (an external program, see
/// <see cref="Command"/>), each optionally weighted as <c>WEIGHT*KIND:ARG</c>; several are summed.
/// </summary>
public static class GrpoRewards
{
    /// <summary>1 when <paramref name="pattern"/> (.NET regular expression) matches the completion, else 0.</summary>
    public static GrpoReward Regex(string pattern)
    {
        var regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        return (_, completion, _) => regex.IsMatch(completion) ? 1 : 0;
    }

    /// <summary>1 when the trimmed completion equals the row's <paramref name="field"/> (trimmed), else 0.</summary>
    public static GrpoReward ExactMatch(string field) => (_, completion, row) =>
        row.Fields is { } fields && fields.TryGetValue(field, out string? answer)
            ? string.Equals(completion.Trim(), answer.Trim(), StringComparison.Ordinal) ? 1 : 0
            : throw new InvalidDataException($"row at line {row.Line} has no field \"{field}\" for the exact:{field} reward");

    /// <summary>1 − |characters − <paramref name="target"/>| / target, at least 0: completions of about <paramref name="target"/> characters.</summary>
    public static GrpoReward Length(int target)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(target, 1);
        return (_, completion, _) => Math.Max(0, 1 - (Math.Abs(completion.Length - target) / (double)target));
    }

    /// <summary>Σ weight·reward.</summary>
    public static GrpoReward Sum(IReadOnlyList<(double Weight, GrpoReward Reward)> parts) => (prompt, completion, row) =>
    {
        double total = 0;
        foreach (var (weight, reward) in parts)
        {
            total += weight * reward(prompt, completion, row);
        }

        return total;
    };

    /// <summary>
    /// An external program started once (<c>/bin/sh -c COMMAND</c>): for each completion it reads one JSON line
    /// <c>{"prompt", "completion", "fields"}</c> on standard input and writes one number on standard output. A program
    /// that exits, writes something else or takes longer than <paramref name="timeout"/> is an error naming the command.
    /// </summary>
    public static CommandReward Command(string command, TimeSpan? timeout = null) => new(command, timeout ?? TimeSpan.FromSeconds(60));

    /// <summary>
    /// The reward spelled by <paramref name="specs"/> (each <c>[WEIGHT*]KIND:ARG</c>), summed. External commands are started
    /// here; dispose the returned resources when training ends.
    /// </summary>
    public static (GrpoReward Reward, IReadOnlyList<IDisposable> Resources) Parse(IReadOnlyList<string> specs, bool allowCommands = true)
    {
        if (specs.Count == 0)
        {
            throw new ArgumentException("GRPO needs a reward: regex:PATTERN, exact:FIELD, length:N or cmd:COMMAND (weighted as WEIGHT*KIND:ARG)");
        }

        var parts = new List<(double, GrpoReward)>();
        var resources = new List<IDisposable>();
        try
        {
            foreach (string spec in specs)
            {
                string rest = spec;
                double weight = 1;
                int star = spec.IndexOf('*', StringComparison.Ordinal);
                int colon = spec.IndexOf(':', StringComparison.Ordinal);
                if (star > 0 && (colon < 0 || star < colon))
                {
                    weight = double.TryParse(spec[..star], NumberStyles.Float, CultureInfo.InvariantCulture, out double w) && double.IsFinite(w)
                        ? w
                        : throw new ArgumentException($"reward '{spec}': '{spec[..star]}' is not a weight");
                    rest = spec[(star + 1)..];
                    colon = rest.IndexOf(':', StringComparison.Ordinal);
                }

                if (colon <= 0)
                {
                    throw new ArgumentException($"reward '{spec}' is not KIND:ARG (regex:PATTERN, exact:FIELD, length:N, cmd:COMMAND)");
                }

                string kind = rest[..colon], arg = rest[(colon + 1)..];
                GrpoReward reward;
                switch (kind)
                {
                    case "regex":
                        try
                        {
                            reward = Regex(arg);
                        }
                        catch (ArgumentException e)
                        {
                            throw new ArgumentException($"reward '{spec}': not a regular expression ({e.Message})", e);
                        }

                        break;
                    case "exact":
                        reward = arg.Length > 0 ? ExactMatch(arg) : throw new ArgumentException($"reward '{spec}': exact needs a field name");
                        break;
                    case "length":
                        reward = int.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out int n) && n >= 1
                            ? Length(n)
                            : throw new ArgumentException($"reward '{spec}': length takes a positive number of characters");
                        break;
                    case "cmd":
                        if (!allowCommands)
                        {
                            throw new ArgumentException($"reward '{spec}': external commands are not allowed here");
                        }

                        var command = Command(arg);
                        resources.Add(command);
                        reward = command.Score;
                        break;
                    default:
                        throw new ArgumentException($"reward '{spec}': unknown kind '{kind}' (regex, exact, length or cmd)");
                }

                parts.Add((weight, reward));
            }
        }
        catch
        {
            foreach (var r in resources)
            {
                r.Dispose();
            }

            throw;
        }

        return (parts.Count == 1 && parts[0].Item1 == 1 ? parts[0].Item2 : Sum(parts), resources);
    }
}

/// <summary>A reward computed by an external program (<see cref="GrpoRewards.Command"/>).</summary>
public sealed class CommandReward : IDisposable
{
    private readonly Process process;
    private readonly string command;
    private readonly TimeSpan timeout;

    internal CommandReward(string command, TimeSpan timeout)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(command);
        this.command = command;
        this.timeout = timeout;
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = false, UseShellExecute = false };
        start.ArgumentList.Add("-c");
        start.ArgumentList.Add(command);
        process = Process.Start(start) ?? throw new InvalidOperationException($"reward command '{command}' did not start");
    }

    /// <summary>Sends one completion and reads its reward.</summary>
    public double Score(string prompt, string completion, TokenRow row)
    {
        string line = JsonSerializer.Serialize(new Dictionary<string, object?> { ["prompt"] = prompt, ["completion"] = completion, ["fields"] = row.Fields });
        try
        {
            process.StandardInput.WriteLine(line);
            process.StandardInput.Flush();
        }
        catch (IOException e)
        {
            throw new InvalidOperationException($"reward command '{command}' stopped reading (exit code {(process.HasExited ? process.ExitCode : -1)})", e);
        }

        var read = process.StandardOutput.ReadLineAsync();
        if (!read.Wait(timeout))
        {
            throw new TimeoutException($"reward command '{command}' gave no reward within {timeout.TotalSeconds:0} s");
        }

        string? answer = read.Result;
        return answer is not null && double.TryParse(answer.Trim(), NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
            ? value
            : throw new InvalidDataException($"reward command '{command}' wrote '{answer ?? "(end of output)"}', not a number");
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        try
        {
            process.StandardInput.Close();
            if (!process.WaitForExit(TimeSpan.FromSeconds(5)))
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // already gone
        }
        finally
        {
            process.Dispose();
        }
    }
}
