using System.Text;
using Microsoft.ML.Lora.Lora;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.MLNet;

/// <summary>
/// Writes a pipeline step's adapter folder as one unit: the PEFT files plus the step's own files are
/// written into a hidden sibling folder, which one rename publishes. On any failure (or cancellation)
/// nothing appears at the destination.
/// </summary>
internal static class AdapterFolder
{
    /// <summary>Saves the model's default adapter and <paramref name="extraFiles"/> (name → UTF-8 text) to <paramref name="directory"/>, which must not exist or be empty.</summary>
    public static void Save(LlamaForCausalLM model, string directory, string baseModelPath, IReadOnlyDictionary<string, string> extraFiles)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(directory);
        string full = Path.GetFullPath(directory);
        if (File.Exists(full))
        {
            throw new IOException($"cannot save the adapter to '{full}': it is a file, not a folder");
        }

        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
        {
            throw new IOException($"cannot save the adapter to '{full}': the folder is not empty; choose a new or empty folder (files are never overwritten or mixed)");
        }

        string parent = Path.GetDirectoryName(full) ?? throw new IOException($"'{full}' has no parent folder");
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{Path.GetFileName(full)}.{Guid.NewGuid():N}.tmp");
        try
        {
            model.SaveAdapter(staging, baseModelNameOrPath: baseModelPath);
            foreach (var (name, text) in extraFiles)
            {
                using var stream = new FileStream(Path.Combine(staging, name), FileMode.CreateNew, FileAccess.Write, FileShare.None);
                stream.Write(Encoding.UTF8.GetBytes(text));
                stream.Flush(flushToDisk: true);
            }

            if (Directory.Exists(full))
            {
                Directory.Delete(full);
            }

            Directory.Move(staging, full);
        }
        catch
        {
            TryDelete(staging);
            throw;
        }
    }

    private static void TryDelete(string staging)
    {
        try
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }
        }
        catch (IOException)
        {
            // The original exception matters more; the leftover is a hidden, recognisable .tmp folder.
        }
        catch (UnauthorizedAccessException)
        {
        }
    }
}
