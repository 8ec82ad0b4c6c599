namespace Microsoft.ML.Lora.Tests;

/// <summary>Finds tests/fixtures (written by tests/reference/make_fixtures.py) from the test binaries.</summary>
internal static class FixturePaths
{
    /// <summary>The cases the reference script writes.</summary>
    public static readonly string[] Cases = ["llama_gqa", "qwen2_bias", "llama_tied_headdim", "mistral", "qwen3", "qwen2_window", "phi3", "gemma2", "gemma3", "mistral_window"];

    /// <summary>Absolute path of tests/fixtures.</summary>
    public static string Root { get; } = Find();

    /// <summary>Folder of one case.</summary>
    public static string Case(string name) => Path.Combine(Root, name);

    private static string Find()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            string candidate = Path.Combine(dir.FullName, "tests", "fixtures");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }

        throw new DirectoryNotFoundException($"tests/fixtures not found above {AppContext.BaseDirectory}");
    }
}
