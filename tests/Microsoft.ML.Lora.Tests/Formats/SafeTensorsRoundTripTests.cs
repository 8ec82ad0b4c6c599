using System.Buffers.Binary;
using System.Runtime.InteropServices;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Formats;

public class SafeTensorsRoundTripTests
{
    [Fact]
    public void F32TensorRoundTripsBitExactly()
    {
        using var dir = new TempDir();
        float[] values = [0f, -0f, 1.5f, float.Epsilon, float.MaxValue, float.NegativeInfinity, 1e-30f, -7.25f];
        using var t = Tensor.FromF32(values, 2, 4);
        string path = dir.File("f32.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromTensor("w", t)]);

        using var file = SafeTensorsFile.Open(path);
        var info = file.Info("w");
        Assert.Equal(SafeTensorsDTypes.F32, info.DType);
        Assert.Equal([2, 4], info.Shape);
        using var back = file.Read("w", DType.F32);
        Assert.Equal(DType.F32, back.DType);
        Assert.Equal([2, 4], back.Shape.ToArray());
        Assert.Equal(values.Select(BitConverter.SingleToInt32Bits), back.AsF32().ToArray().Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void Bf16TensorRoundTripsBitExactlyAndWidensToF32()
    {
        using var dir = new TempDir();
        ushort[] bits = [0x3F80, 0xC020, 0x0001, 0x7F80, 0x8000, 0x4049];
        using var t = Tensor.Empty(DType.BF16, 3, 2);
        bits.CopyTo(t.AsBf16());
        string path = dir.File("bf16.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromTensor("w", t)]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(SafeTensorsDTypes.BF16, file.Info("w").DType);
        using var same = file.Read("w", DType.BF16);
        Assert.Equal(bits, same.AsBf16().ToArray());
        using var wide = file.Read("w", DType.F32);
        Assert.Equal(bits.Select(Bf16.ToFloat), wide.AsF32().ToArray());
        Assert.Equal(bits.Select(Bf16.ToFloat), file.ReadFloats("w"));
    }

    [Fact]
    public void F16SourceIsConvertedToF32AndBf16()
    {
        using var dir = new TempDir();
        Half[] halves = [(Half)1, (Half)(-2), Half.MaxValue, Half.Epsilon, Half.PositiveInfinity, BitConverter.UInt16BitsToHalf(0x3555)];
        var bytes = MemoryMarshal.AsBytes<Half>(halves).ToArray();
        string path = dir.File("f16.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromBytes("h", SafeTensorsDTypes.F16, [6], bytes)]);

        using var file = SafeTensorsFile.Open(path);
        using var f32 = file.Read("h", DType.F32);
        Assert.Equal([1f, -2f, 65504f, 5.9604645e-8f, float.PositiveInfinity, 0.333251953125f], f32.AsF32().ToArray());
        using var bf16 = file.Read("h", DType.BF16);
        Assert.Equal(f32.AsF32().ToArray().Select(Bf16.FromFloat), bf16.AsBf16().ToArray());
    }

    [Fact]
    public void Int64TensorRoundTrips()
    {
        using var dir = new TempDir();
        long[] ids = [0, 1, -1, long.MinValue, long.MaxValue, 128000];
        string path = dir.File("i64.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromInt64("ids", [2, 3], ids)]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(SafeTensorsDTypes.I64, file.Info("ids").DType);
        Assert.Equal([2, 3], file.Info("ids").Shape);
        Assert.Equal(ids, file.ReadInt64("ids"));
    }

    [Fact]
    public void Int32IsWidenedByReadInt64()
    {
        using var dir = new TempDir();
        var bytes = new byte[8];
        BinaryPrimitives.WriteInt32LittleEndian(bytes, -5);
        BinaryPrimitives.WriteInt32LittleEndian(bytes.AsSpan(4), int.MaxValue);
        string path = dir.File("i32.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromBytes("n", SafeTensorsDTypes.I32, [2], bytes)]);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal([-5L, int.MaxValue], file.ReadInt64("n"));
    }

    [Fact]
    public void MetadataRoundTripsWithFormatPtAdded()
    {
        using var dir = new TempDir();
        string path = dir.File("meta.safetensors");
        var metadata = new Dictionary<string, string> { ["step"] = "12", ["unicode"] = "naïve ✓", ["quote"] = "a\"b" };
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("x", [1], [1])], metadata);

        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("12", file.Metadata["step"]);
        Assert.Equal("naïve ✓", file.Metadata["unicode"]);
        Assert.Equal("a\"b", file.Metadata["quote"]);
        Assert.Equal("pt", file.Metadata["format"]);
        Assert.Equal(4, file.Metadata.Count);
    }

    [Fact]
    public void CallerFormatIsKept()
    {
        using var dir = new TempDir();
        string path = dir.File("meta.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("x", [1], [1])], new Dictionary<string, string> { ["format"] = "mlx" });
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal("mlx", file.Metadata["format"]);
    }

    [Fact]
    public void EmptyAndScalarTensorsRoundTrip()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.WriteSample(dir);

        using var file = SafeTensorsFile.Open(path);
        var empty = file.Info("e");
        Assert.Equal([0, 5], empty.Shape);
        Assert.Equal(0, empty.ByteLength);
        using var e = file.Read("e", DType.F32);
        Assert.Equal(0, e.Length);
        Assert.Equal([0, 5], e.Shape.ToArray());

        var scalar = file.Info("s");
        Assert.Empty(scalar.Shape);
        using var s = file.Read("s", DType.F32);
        Assert.Equal(0, s.Rank);
        Assert.Equal(1, s.Length);
        Assert.Equal(42f, s.GetFloat(0));
        Assert.Equal([1f, 2, 3, 4, 5, 6], file.ReadFloats("a"));
        Assert.Equal([7L, -1, long.MaxValue], file.ReadInt64("ids"));
        Assert.Equal("sample", file.Metadata["note"]);
    }

    [Fact]
    public void LayoutIsSortedPackedAndHeaderPaddedTo8()
    {
        using var dir = new TempDir();
        string path = dir.File("layout.safetensors");
        SafeTensorsWriter.Write(path, [
            SafeTensorEntry.FromFloats("z", [3], [1, 2, 3]),
            SafeTensorEntry.FromFloats("a", [1], [4]),
            SafeTensorEntry.FromInt64("m", [2], [5, 6]),
        ]);

        byte[] bytes = File.ReadAllBytes(path);
        ulong n = BinaryPrimitives.ReadUInt64LittleEndian(bytes);
        Assert.Equal(0UL, n % 8);
        Assert.Equal((ulong)bytes.Length, 8 + n + 4 + 16 + 12);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal((0L, 4L), (file.Info("a").Begin, file.Info("a").End));
        Assert.Equal((4L, 20L), (file.Info("m").Begin, file.Info("m").End));
        Assert.Equal((20L, 32L), (file.Info("z").Begin, file.Info("z").End));
        Assert.Equal(BitConverter.GetBytes(4f), file.GetBytes("a").ToArray());
    }

    [Fact]
    public void OverwriteReplacesTheWholeFile()
    {
        using var dir = new TempDir();
        string path = dir.File("w.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("old", [1000], new float[1000])]);
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("new", [1], [9])]);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(["new"], file.Tensors.Keys);
        Assert.Equal([9f], file.ReadFloats("new"));
        Assert.Empty(dir.TempFiles());
    }

    [Fact]
    public void DeferredTensorIsProducedOnceAndDisposed()
    {
        using var dir = new TempDir();
        string path = dir.File("deferred.safetensors");
        Tensor? produced = null;
        int calls = 0;
        SafeTensorsWriter.Write(path, [SafeTensorEntry.Deferred("d", DType.F32, [2], () =>
        {
            calls++;
            produced = Tensor.FromF32([3f, 4f], 2);
            return produced;
        })]);

        Assert.Equal(1, calls);
        Assert.True(produced!.IsDisposed);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal([3f, 4f], file.ReadFloats("d"));
    }

    [Fact]
    public void ProgressReportsCumulativeBytes()
    {
        using var dir = new TempDir();
        var reports = new List<long>();
        SafeTensorsWriter.Write(
            dir.File("p.safetensors"),
            [SafeTensorEntry.FromFloats("a", [2], [1, 2]), SafeTensorEntry.FromInt64("b", [1], [3])],
            progress: new SyncProgress(reports));
        Assert.Equal([8L, 16L], reports);
    }

    [Fact]
    public void WriterRejectsBadEntries()
    {
        Assert.Throws<ArgumentException>(() => SafeTensorEntry.FromBytes("x", "F32", [2], new byte[7]));
        Assert.Throws<ArgumentException>(() => SafeTensorEntry.FromBytes("x", "Q4", [1], new byte[1]));
        Assert.Throws<ArgumentException>(() => SafeTensorEntry.FromFloats("__metadata__", [1], [1]));
        Assert.Throws<ArgumentException>(() => SafeTensorEntry.FromFloats("x", [-1], []));
        using var dir = new TempDir();
        Assert.Throws<ArgumentException>(() => SafeTensorsWriter.Write(dir.File("d.safetensors"), [
            SafeTensorEntry.FromFloats("x", [1], [1]), SafeTensorEntry.FromFloats("x", [1], [2])]));
        Assert.False(File.Exists(dir.File("d.safetensors")));
    }

    /// <summary>Reports synchronously (Progress&lt;T&gt; posts to the thread pool).</summary>
    private sealed class SyncProgress(List<long> reports) : IProgress<long>
    {
        public void Report(long value) => reports.Add(value);
    }
}
