namespace Microsoft.ML.Lora.Examples;

/// <summary>
/// The real pretrained TinyStories-656K model the repository ships in <c>models/tinystories-656k</c>
/// (Apache-2.0; see its PROVENANCE.md): a 2-layer Llama, hidden 128, vocabulary 2048, trained on children's
/// stories. Its tied embedding matrix is stored only as <c>lm_head.weight</c>, as transformers saved it; the
/// engine loads the folder as it is.
/// </summary>
internal static class TinyStories
{
    private const string Folder = "models/tinystories-656k";

    /// <summary>The repository's model folder, found from the working folder or the program's folder upwards.</summary>
    /// <exception cref="DirectoryNotFoundException">Neither is inside the repository.</exception>
    public static string Path
    {
        get
        {
            foreach (string start in new[] { Environment.CurrentDirectory, AppContext.BaseDirectory })
            {
                for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
                {
                    string candidate = System.IO.Path.Combine(dir.FullName, Folder);
                    if (File.Exists(System.IO.Path.Combine(candidate, "config.json")))
                    {
                        return candidate;
                    }
                }
            }

            throw new DirectoryNotFoundException($"{Folder} not found above '{Environment.CurrentDirectory}' or '{AppContext.BaseDirectory}'; run from the repository");
        }
    }
}
