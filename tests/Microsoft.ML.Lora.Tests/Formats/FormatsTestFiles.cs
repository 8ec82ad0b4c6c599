using System.Buffers.Binary;
using System.Text;
using Microsoft.ML.Lora.Formats;

namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>A temporary folder deleted on dispose.</summary>
internal sealed class TempDir : IDisposable
{
    public TempDir()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "lora-formats-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Names of leftover temporary files of the atomic writer.</summary>
    public string[] TempFiles() => Directory.GetFiles(Path, "*.tmp").Select(System.IO.Path.GetFileName).OfType<string>().ToArray();

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}

/// <summary>Builders of safetensors bytes by hand, for malformed-input tests.</summary>
internal static class RawSafeTensors
{
    /// <summary>8-byte length (or <paramref name="declaredLength"/>), the header text, then <paramref name="data"/>.</summary>
    public static byte[] Build(string headerJson, byte[] data, ulong? declaredLength = null)
    {
        byte[] header = Encoding.UTF8.GetBytes(headerJson);
        var bytes = new byte[8 + header.Length + data.Length];
        BinaryPrimitives.WriteUInt64LittleEndian(bytes, declaredLength ?? (ulong)header.Length);
        header.CopyTo(bytes, 8);
        data.CopyTo(bytes, 8 + header.Length);
        return bytes;
    }

    public static string Write(TempDir dir, string name, string headerJson, byte[] data, ulong? declaredLength = null)
    {
        string path = dir.File(name);
        System.IO.File.WriteAllBytes(path, Build(headerJson, data, declaredLength));
        return path;
    }

    /// <summary>A valid file with F32 'a' [2, 3], BF16 'b' [4], I64 'ids' [3], scalar 's', empty 'e' [0, 5] and metadata.</summary>
    public static string WriteSample(TempDir dir, string name = "sample.safetensors")
    {
        string path = dir.File(name);
        var bf16 = global::Microsoft.ML.Lora.Tensors.Tensor.FromF32([1f, -2f, 0.5f, 3f], 4);
        using var b = bf16.To(global::Microsoft.ML.Lora.Tensors.DType.BF16);
        bf16.Dispose();
        SafeTensorsWriter.Write(
            path,
            [
                SafeTensorEntry.FromFloats("a", [2, 3], [1, 2, 3, 4, 5, 6]),
                SafeTensorEntry.FromTensor("b", b),
                SafeTensorEntry.FromInt64("ids", [3], [7, -1, long.MaxValue]),
                SafeTensorEntry.FromFloats("s", [], [42]),
                SafeTensorEntry.FromFloats("e", [0, 5], []),
            ],
            new Dictionary<string, string> { ["note"] = "sample" });
        return path;
    }
}
