using System.Text;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>Every malformed file gives an InvalidDataException that names the file, the tensor and what was wrong.</summary>
public class SafeTensorsBadInputTests
{
    private static InvalidDataException OpenFails(string path)
    {
        var e = Assert.Throws<InvalidDataException>(() => SafeTensorsFile.Open(path).Dispose());
        Assert.Contains(path, e.Message);
        return e;
    }

    private static string OneTensor(string entry) => "{\"w\":" + entry + "}";

    [Fact]
    public void FileShorterThanTheLengthField()
    {
        using var dir = new TempDir();
        string path = dir.File("short.safetensors");
        File.WriteAllBytes(path, [1, 2, 3]);
        var e = OpenFails(path);
        Assert.Contains("3 bytes", e.Message);
    }

    [Fact]
    public void EmptyFile()
    {
        using var dir = new TempDir();
        string path = dir.File("empty.safetensors");
        File.WriteAllBytes(path, []);
        Assert.Contains("0 bytes", OpenFails(path).Message);
    }

    [Fact]
    public void HeaderLengthLargerThanTheFile()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "long.safetensors", "{}", [], declaredLength: 1000);
        var e = OpenFails(path);
        Assert.Contains("header length 1000", e.Message);
        Assert.Contains("exceeds the 2 bytes", e.Message);
    }

    [Fact]
    public void HeaderLengthNearULongMax()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "huge.safetensors", "{}", [], declaredLength: ulong.MaxValue);
        Assert.Contains($"header length {ulong.MaxValue}", OpenFails(path).Message);
    }

    [Fact]
    public void TruncatedFileLosesTensorData()
    {
        using var dir = new TempDir();
        string good = RawSafeTensors.WriteSample(dir);
        byte[] bytes = File.ReadAllBytes(good);
        string path = dir.File("truncated.safetensors");
        File.WriteAllBytes(path, bytes[..^5]);
        var e = OpenFails(path);
        Assert.Contains("tensor '", e.Message);
        Assert.Contains("outside the data section", e.Message);
    }

    [Fact]
    public void TruncatedInsideTheHeader()
    {
        using var dir = new TempDir();
        byte[] bytes = File.ReadAllBytes(RawSafeTensors.WriteSample(dir));
        string path = dir.File("cut.safetensors");
        File.WriteAllBytes(path, bytes[..40]);
        Assert.Contains("header length", OpenFails(path).Message);
    }

    [Fact]
    public void ByteSizeDisagreesWithShape()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "size.safetensors", OneTensor("""{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}"""), new byte[24]);
        var e = OpenFails(path);
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("span 20 bytes", e.Message);
        Assert.Contains("needs 24", e.Message);
    }

    [Fact]
    public void OffsetsPastTheEnd()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "end.safetensors", OneTensor("""{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"""), new byte[8]);
        var e = OpenFails(path);
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("[4, 12]", e.Message);
        Assert.Contains("8 bytes", e.Message);
    }

    [Fact]
    public void OffsetsReversed()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "rev.safetensors", OneTensor("""{"dtype":"F32","shape":[0],"data_offsets":[8,0]}"""), new byte[8]);
        Assert.Contains("tensor 'w'", OpenFails(path).Message);
    }

    [Fact]
    public void NegativeOffset()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "neg.safetensors", OneTensor("""{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}"""), new byte[8]);
        var e = OpenFails(path);
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("non-negative integer", e.Message);
    }

    [Fact]
    public void OverlappingTensors()
    {
        using var dir = new TempDir();
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}}""";
        string path = RawSafeTensors.Write(dir, "overlap.safetensors", header, new byte[12]);
        var e = OpenFails(path);
        Assert.Contains("'a'", e.Message);
        Assert.Contains("'b'", e.Message);
        Assert.Contains("overlaps", e.Message);
    }

    [Fact]
    public void EmptyTensorsMayShareAnOffsetWhereTheTilingContinues()
    {
        using var dir = new TempDir();
        string header = """{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"c":{"dtype":"I64","shape":[0,3],"data_offsets":[4,4]}}""";
        string path = RawSafeTensors.Write(dir, "ok.safetensors", header, new byte[4]);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(3, file.Tensors.Count);
    }

    [Theory]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}""", 8, "gap of 4 bytes after the start of the data section")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}""", 12, "gap of 4 bytes after tensor 'a'")]
    [InlineData("""{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}""", 5, "1 trailing bytes")]
    public void TensorsMustTileTheDataSectionAsTheReferenceRequires(string header, int dataBytes, string expected)
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "tiling.safetensors", header, new byte[dataBytes]);
        var e = OpenFails(path);
        Assert.Contains(expected, e.Message, StringComparison.Ordinal);
        Assert.Contains(path, e.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void AHeaderLengthOneByteShortIsRefusedNotReadShifted()
    {
        // Writers pad the JSON with spaces, so a length one short still parses; the data section then starts a
        // byte early and every value would be read shifted (a NaN loss), unless the tiling check catches it.
        using var dir = new TempDir();
        string header = """{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}   """;
        string path = RawSafeTensors.Write(dir, "short.safetensors", header, new byte[8], declaredLength: (ulong)header.Length - 1);
        Assert.Contains("1 trailing bytes", OpenFails(path).Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("{\"w\":")]
    [InlineData("not json")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},}")]
    [InlineData("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} trailing")]
    public void BadJson(string header)
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "json.safetensors", header, new byte[4]);
        Assert.Contains("not valid JSON", OpenFails(path).Message);
    }

    [Fact]
    public void HeaderIsNotUtf8()
    {
        using var dir = new TempDir();
        string path = dir.File("utf8.safetensors");
        byte[] header = [(byte)'{', (byte)'"', 0xC3, 0x28, (byte)'"', (byte)':', (byte)'1', (byte)'}'];
        File.WriteAllBytes(path, [.. BitConverter.GetBytes((ulong)header.Length), .. header]);
        Assert.Contains("UTF-8", OpenFails(path).Message);
    }

    [Fact]
    public void HeaderIsAnArray()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "arr.safetensors", "[]", []);
        Assert.Contains("expected an object", OpenFails(path).Message);
    }

    [Fact]
    public void DuplicateTensorName()
    {
        using var dir = new TempDir();
        string entry = """{"dtype":"F32","shape":[1],"data_offsets":[0,4]}""";
        string path = RawSafeTensors.Write(dir, "dup.safetensors", "{\"w\":" + entry + ",\"w\":" + entry + "}", new byte[4]);
        OpenFails(path);
    }

    [Fact]
    public void UnknownDType()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "dtype.safetensors", OneTensor("""{"dtype":"Q4_K","shape":[1],"data_offsets":[0,1]}"""), new byte[1]);
        var e = OpenFails(path);
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains("unknown dtype 'Q4_K'", e.Message);
        Assert.Contains("BF16", e.Message);
    }

    [Theory]
    [InlineData("""{"shape":[1],"data_offsets":[0,4]}""", "'dtype' is missing")]
    [InlineData("""{"dtype":"F32","data_offsets":[0,4]}""", "'shape' is missing")]
    [InlineData("""{"dtype":"F32","shape":[1]}""", "'data_offsets' is missing")]
    [InlineData("""{"dtype":4,"shape":[1],"data_offsets":[0,4]}""", "'dtype' is a JSON Number")]
    [InlineData("""{"dtype":"F32","shape":"1","data_offsets":[0,4]}""", "'shape' is a JSON String")]
    [InlineData("""{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}""", "shape[0] is -1")]
    [InlineData("""{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}""", "shape[0] is 1.5")]
    [InlineData("""{"dtype":"F32","shape":[3000000000],"data_offsets":[0,4]}""", "shape[0] is 3000000000")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[0]}""", "data_offsets has 1 values")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[0,"4"]}""", "data_offsets end is \"4\"")]
    [InlineData("""{"dtype":"F32","shape":[1],"data_offsets":[0,99999999999999999999]}""", "data_offsets end")]
    [InlineData("""{"dtype":"F32","shape":[2147483647,2147483647,2147483647],"data_offsets":[0,4]}""", "more bytes than a file can hold")]
    [InlineData("[1]", "entry is a JSON Array")]
    public void MalformedEntry(string entry, string expected)
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "entry.safetensors", OneTensor(entry), new byte[4]);
        var e = OpenFails(path);
        Assert.Contains("tensor 'w'", e.Message);
        Assert.Contains(expected, e.Message);
    }

    [Theory]
    [InlineData("""{"__metadata__":{"step":3}}""", "entry 'step' is a JSON Number")]
    [InlineData("""{"__metadata__":[]}""", "'__metadata__' is a JSON Array")]
    public void MalformedMetadata(string header, string expected)
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.Write(dir, "meta.safetensors", header, []);
        Assert.Contains(expected, OpenFails(path).Message);
    }

    [Fact]
    public void MissingTensorNamesFileAndTensor()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.WriteSample(dir);
        using var file = SafeTensorsFile.Open(path);
        var e = Assert.Throws<InvalidDataException>(() => file.Read("model.layers.3.mlp.up_proj.weight", DType.F32));
        Assert.Contains("'model.layers.3.mlp.up_proj.weight'", e.Message);
        Assert.Contains(path, e.Message);
        Assert.False(file.Contains("model.layers.3.mlp.up_proj.weight"));
    }

    [Fact]
    public void WrongShapeNamesFileTensorAndBothShapes()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.WriteSample(dir);
        using var file = SafeTensorsFile.Open(path);
        using (var ok = file.Read("a", DType.F32, [2, 3]))
        {
            Assert.Equal(6, ok.Length);
        }

        var e = Assert.Throws<InvalidDataException>(() => file.Read("a", DType.F32, [3, 2]));
        Assert.Contains(path, e.Message);
        Assert.Contains("tensor 'a' has shape [2, 3]; expected [3, 2]", e.Message);
    }

    [Fact]
    public void ReadingIntegersAsFloatsOrFloatsAsIntegersNamesTheDType()
    {
        using var dir = new TempDir();
        string path = RawSafeTensors.WriteSample(dir);
        using var file = SafeTensorsFile.Open(path);
        var e = Assert.Throws<InvalidDataException>(() => file.Read("ids", DType.F32));
        Assert.Contains("tensor 'ids' has dtype I64", e.Message);
        Assert.Throws<InvalidDataException>(() => file.ReadFloats("ids"));
        var e2 = Assert.Throws<InvalidDataException>(() => file.ReadInt64("a"));
        Assert.Contains("tensor 'a' has dtype F32; expected I64 or I32", e2.Message);
    }

    [Fact]
    public void ModifiedShapeArrayCannotMakeAReadLeaveTheTensor()
    {
        using var dir = new TempDir();
        using var file = SafeTensorsFile.Open(RawSafeTensors.WriteSample(dir));
        file.Info("a").Shape[0] = 1000;
        Assert.Throws<InvalidOperationException>(() => file.Read("a", DType.F32));
        Assert.Equal(6, file.ReadFloats("a").Length);
    }

    [Fact]
    public void DisposedFileRefusesReads()
    {
        using var dir = new TempDir();
        var file = SafeTensorsFile.Open(RawSafeTensors.WriteSample(dir));
        file.Dispose();
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.ReadFloats("a"));
    }

    [Fact]
    public void MissingFileIsFileNotFound()
    {
        using var dir = new TempDir();
        Assert.Throws<FileNotFoundException>(() => SafeTensorsFile.Open(dir.File("nope.safetensors")));
    }

    [Fact]
    public void ValidHeaderParsesWithAllKnownDTypes()
    {
        // Guards the tests above: the same builder with good values opens fine.
        using var dir = new TempDir();
        var sb = new StringBuilder("{");
        long offset = 0;
        foreach (string dtype in SafeTensorsDTypes.Known)
        {
            SafeTensorsDTypes.TryGetSize(dtype, out int size);
            sb.Append($"\"t_{dtype}\":{{\"dtype\":\"{dtype}\",\"shape\":[3],\"data_offsets\":[{offset},{offset + (3 * size)}]}},");
            offset += 3 * size;
        }

        sb.Length--;
        sb.Append('}');
        string path = RawSafeTensors.Write(dir, "all.safetensors", sb.ToString(), new byte[offset]);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal(SafeTensorsDTypes.Known.Count(), file.Tensors.Count);
    }
}
