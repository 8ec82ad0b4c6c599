using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>A failed write leaves the destination as it was and no temporary file behind.</summary>
public class SafeTensorsAtomicWriteTests
{
    private static byte[] Previous(TempDir dir, string path)
    {
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("old", [2], [1, 2])]);
        return File.ReadAllBytes(path);
    }

    private static IEnumerable<SafeTensorEntry> ThrowsMidway()
    {
        yield return SafeTensorEntry.FromFloats("a", [1], [1]);
        yield return SafeTensorEntry.FromFloats("b", [1], [2]);
        throw new IOException("source went away");
    }

    [Fact]
    public void EnumeratorThrowingMidwayLeavesDestinationUntouched()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        byte[] before = Previous(dir, path);

        var e = Assert.Throws<IOException>(() => SafeTensorsWriter.Write(path, ThrowsMidway()));
        Assert.Equal("source went away", e.Message);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(dir.TempFiles());
    }

    [Fact]
    public void ProducerThrowingAfterDataWasWrittenDeletesTheTemporaryFile()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        byte[] before = Previous(dir, path);
        bool firstWritten = false;
        SafeTensorEntry[] entries =
        [
            SafeTensorEntry.Deferred("a", DType.F32, [1024], () =>
            {
                firstWritten = true;
                return Tensor.Zeros(DType.F32, 1024);
            }),
            SafeTensorEntry.Deferred("b", DType.F32, [1], () => throw new InvalidOperationException("merge failed")),
        ];

        Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.Write(path, entries));
        Assert.True(firstWritten);
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(dir.TempFiles());
    }

    [Fact]
    public void ProducerReturningAnotherShapeFailsAndLeavesNothing()
    {
        using var dir = new TempDir();
        string path = dir.File("new.safetensors");
        var e = Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.Write(path, [SafeTensorEntry.Deferred("w", DType.F32, [2], () => Tensor.Zeros(DType.F32, 3))]));
        Assert.Contains("tensor 'w'", e.Message);
        Assert.False(File.Exists(path));
        Assert.Empty(dir.TempFiles());
    }

    [Fact]
    public void DisposedTensorFailsTheWrite()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        byte[] before = Previous(dir, path);
        var t = Tensor.Zeros(DType.F32, 4);
        var entry = SafeTensorEntry.FromTensor("t", t);
        t.Dispose();
        Assert.Throws<ObjectDisposedException>(() => SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("a", [1], [1]), entry]));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(dir.TempFiles());
    }

    [Fact]
    public void CancellationLeavesDestinationUntouched()
    {
        using var dir = new TempDir();
        string path = dir.File("model.safetensors");
        byte[] before = Previous(dir, path);
        using var cts = new CancellationTokenSource();
        SafeTensorEntry[] entries =
        [
            SafeTensorEntry.Deferred("a", DType.F32, [1], () =>
            {
                cts.Cancel();
                return Tensor.Zeros(DType.F32, 1);
            }),
            SafeTensorEntry.FromFloats("b", [1], [1]),
        ];
        Assert.ThrowsAny<OperationCanceledException>(() => SafeTensorsWriter.Write(path, entries, cancellationToken: cts.Token));
        Assert.Equal(before, File.ReadAllBytes(path));
        Assert.Empty(dir.TempFiles());
    }

    [Fact]
    public void FailedShardedWriteKeepsThePreviousModelLoadable()
    {
        using var dir = new TempDir();
        SafeTensorsWriter.WriteModel(dir.Path, [SafeTensorEntry.FromFloats("w", [2], [5, 6])]);
        byte[] before = File.ReadAllBytes(dir.File(SafeTensorsFolder.SingleFileName));
        SafeTensorEntry[] entries =
        [
            SafeTensorEntry.FromFloats("a", [4], [1, 2, 3, 4]),
            SafeTensorEntry.Deferred("b", DType.F32, [4], () => throw new InvalidOperationException("boom")),
        ];

        Assert.Throws<InvalidOperationException>(() => SafeTensorsWriter.WriteModel(dir.Path, entries, maxShardBytes: 16));
        Assert.False(File.Exists(dir.File(SafeTensorsFolder.IndexFileName)));
        Assert.Equal(before, File.ReadAllBytes(dir.File(SafeTensorsFolder.SingleFileName)));
        Assert.Empty(dir.TempFiles());
        using var folder = SafeTensorsFolder.Open(dir.Path);
        Assert.Equal([5f, 6f], folder.ReadFloats("w"));
    }
}
