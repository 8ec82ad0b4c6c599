namespace Microsoft.ML.Lora.Examples;

/// <summary>
/// The folders an example works in, from its command line <c>[MODEL_DIR [OUT_DIR]]</c>: the output folder
/// (default <c>artifacts/examples/NAME</c>) and the model folder (default the real TinyStories-656K model the
/// repository ships in <c>models/tinystories-656k</c>).
/// </summary>
internal static class ExampleFolders
{
    public static (string Output, string ModelPath) FromArgs(string[] args, string name)
    {
        string output = OutputFolder(args.Length > 1 ? args[1] : Path.Combine("artifacts", "examples", name), isDefault: args.Length <= 1);
        string modelPath = args.Length > 0 ? args[0] : TinyStories.Path;
        return (output, modelPath);
    }

    /// <summary>A fresh output folder: <paramref name="path"/> emptied when it is the example's own default, else required to be new.</summary>
    private static string OutputFolder(string path, bool isDefault)
    {
        if (Directory.Exists(path))
        {
            if (!isDefault)
            {
                throw new IOException($"output folder '{path}' exists; choose a new one");
            }

            Directory.Delete(path, recursive: true);
        }

        Directory.CreateDirectory(path);
        return path;
    }
}
