using System.Text;
using Microsoft.ML.Lora.Training;

namespace Microsoft.ML.Lora.Tests.Training;

/// <summary>A temporary folder for data files, removed after each test.</summary>
public abstract class DatasetTestFiles : IDisposable
{
    private readonly string root = Path.Combine(Path.GetTempPath(), "lora-dataset-tests", Guid.NewGuid().ToString("N"));

    protected DatasetTestFiles() => Directory.CreateDirectory(root);

    internal DatasetTestTokenizer Tokenizer { get; } = new();

    public void Dispose()
    {
        Directory.Delete(root, recursive: true);
        GC.SuppressFinalize(this);
    }

    /// <summary>Writes <paramref name="lines"/> joined by \n (and a final \n) to a file named <paramref name="name"/>.</summary>
    protected string Write(string name, params string[] lines) => WriteRaw(name, string.Join("\n", lines) + "\n");

    protected string WriteRaw(string name, string content) => WriteBytes(name, Encoding.UTF8.GetBytes(content));

    protected string WriteBytes(string name, byte[] content)
    {
        string path = Path.Combine(root, name);
        File.WriteAllBytes(path, content);
        return path;
    }

    protected TextDataset Load(string path, TextDatasetOptions? options = null) => TextDataset.Load(path, Tokenizer, options);

    /// <summary>Loads <paramref name="path"/> expecting a bad-row error; returns its message.</summary>
    protected string BadRow(string path, TextDatasetOptions? options = null) =>
        Assert.Throws<InvalidDataException>(() => Load(path, options)).Message;
}
