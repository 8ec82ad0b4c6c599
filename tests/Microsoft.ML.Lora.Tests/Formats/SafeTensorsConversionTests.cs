using System.Buffers.Binary;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Formats;

/// <summary>Known-value checks of the dtype conversions done while reading.</summary>
public class SafeTensorsConversionTests
{
    // F32 bits → expected BF16 bits under round-to-nearest-even.
    public static TheoryData<uint, ushort> Bf16Cases => new()
    {
        { 0x3F80_0000, 0x3F80 }, // 1.0 exact
        { 0x3F80_8000, 0x3F80 }, // tie between 0x3F80 and 0x3F81 → even 0x3F80
        { 0x3F81_8000, 0x3F82 }, // tie between 0x3F81 and 0x3F82 → even 0x3F82
        { 0x3F80_8001, 0x3F81 }, // just above the tie
        { 0x3F80_7FFF, 0x3F80 }, // just below the tie
        { 0x4049_0FDB, 0x4049 }, // π → 3.140625
        { 0xC020_0000, 0xC020 }, // −2.5 exact
        { 0x7F7F_FFFF, 0x7F80 }, // float.MaxValue rounds to +∞
        { 0x8000_0000, 0x8000 }, // −0
        { 0x0000_0001, 0x0000 }, // smallest subnormal rounds to 0
    };

    [Theory]
    [MemberData(nameof(Bf16Cases))]
    public void F32SourceRoundsToNearestEvenBf16(uint f32Bits, ushort expected)
    {
        using var dir = new TempDir();
        var bytes = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(bytes, f32Bits);
        string path = dir.File("x.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromBytes("x", SafeTensorsDTypes.F32, [1], bytes)]);
        using var file = SafeTensorsFile.Open(path);
        using var t = file.Read("x", DType.BF16);
        Assert.Equal(expected, t.AsBf16()[0]);
    }

    [Fact]
    public void F32NaNStaysNaNInBf16()
    {
        using var dir = new TempDir();
        string path = dir.File("nan.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromFloats("x", [2], [float.NaN, BitConverter.UInt32BitsToSingle(0x7F80_0001)])]);
        using var file = SafeTensorsFile.Open(path);
        using var t = file.Read("x", DType.BF16);
        Assert.All(t.AsBf16().ToArray(), b => Assert.True(float.IsNaN(Bf16.ToFloat(b)), $"0x{b:X4} is not NaN"));
    }

    // F16 bits → exact float value, and the BF16 it rounds to.
    public static TheoryData<ushort, float, ushort> F16Cases => new()
    {
        { 0x3C00, 1f, 0x3F80 },
        { 0xC000, -2f, 0xC000 },
        { 0x7BFF, 65504f, 0x4780 }, // 65504 = 0x477FE000: lower half 0xE000 > 0x8000 rounds up to 65536
        { 0x0001, 5.9604645e-8f, 0x3380 }, // 2^-24, smallest F16 subnormal, exact in BF16
        { 0x3555, 0.333251953125f, 0x3EAB }, // 0x3EAAA000: lower half 0xA000 > 0x8000 rounds up
        { 0x7C00, float.PositiveInfinity, 0x7F80 },
        { 0x8000, -0f, 0x8000 },
    };

    [Theory]
    [MemberData(nameof(F16Cases))]
    public void F16SourceConvertsExactlyToF32AndRoundsOnceToBf16(ushort f16Bits, float expected, ushort expectedBf16)
    {
        using var dir = new TempDir();
        var bytes = new byte[2];
        BinaryPrimitives.WriteUInt16LittleEndian(bytes, f16Bits);
        string path = dir.File("h.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromBytes("h", SafeTensorsDTypes.F16, [1], bytes)]);
        using var file = SafeTensorsFile.Open(path);
        using var f32 = file.Read("h", DType.F32);
        Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(f32.AsF32()[0]));
        using var bf16 = file.Read("h", DType.BF16);
        Assert.Equal(expectedBf16, bf16.AsBf16()[0]);
    }

    [Fact]
    public void F64SourceRoundsOnceToBf16()
    {
        // 1 + 2^-8 + 2^-40 is just above the BF16 tie between 0x3F80 and 0x3F81. Through F32 it would
        // first become exactly the tie (1 + 2^-8) and then round to even 0x3F80: double rounding.
        double[] values = [1 + Math.Pow(2, -8) + Math.Pow(2, -40), -(1 + Math.Pow(2, -8) + Math.Pow(2, -40)), 1.0 / 3, 1e300, 1e-300, double.NaN, 1 + Math.Pow(2, -8)];
        ushort[] expected = [0x3F81, 0xBF81, 0x3EAB, 0x7F80, 0x0000, 0, 0x3F80];
        var bytes = new byte[values.Length * 8];
        for (int i = 0; i < values.Length; i++)
        {
            BinaryPrimitives.WriteDoubleLittleEndian(bytes.AsSpan(i * 8), values[i]);
        }

        using var dir = new TempDir();
        string path = dir.File("d.safetensors");
        SafeTensorsWriter.Write(path, [SafeTensorEntry.FromBytes("d", SafeTensorsDTypes.F64, [values.Length], bytes)]);
        using var file = SafeTensorsFile.Open(path);
        using var bf16 = file.Read("d", DType.BF16);
        var got = bf16.AsBf16().ToArray();
        for (int i = 0; i < values.Length; i++)
        {
            if (double.IsNaN(values[i]))
            {
                Assert.True(float.IsNaN(Bf16.ToFloat(got[i])));
            }
            else
            {
                Assert.True(expected[i] == got[i], $"{values[i]:R}: expected 0x{expected[i]:X4}, got 0x{got[i]:X4}");
            }
        }

        using var f32 = file.Read("d", DType.F32);
        Assert.Equal(values.Select(v => (float)v), f32.AsF32().ToArray());
    }

    [Fact]
    public void F64ToBf16MatchesExactRoundingOnRandomValues()
    {
        // Reference: pick the nearer of the two BF16 neighbours in double arithmetic (exact for these
        // magnitudes), ties to the even pattern.
        var random = new Random(1234);
        for (int i = 0; i < 20000; i++)
        {
            double v = (random.NextDouble() - 0.5) * Math.Pow(2, random.Next(-60, 60));
            if (i % 2 == 0)
            {
                // Near a BF16 midpoint, where rounding through F32 would round twice.
                uint mid = (BitConverter.SingleToUInt32Bits((float)v) & 0xFFFF_0000) | 0x8000;
                v = BitConverter.UInt32BitsToSingle(mid) * (1 + ((random.Next(2) * 2) - 1) * Math.Pow(2, -random.Next(25, 53)));
            }

            ushort got = FloatConversion.DoubleToBf16(v);
            uint truncated = BitConverter.SingleToUInt32Bits((float)v) & 0xFFFF_0000;
            double lo = BitConverter.UInt32BitsToSingle(truncated);
            if (Math.Abs(lo) > Math.Abs(v))
            {
                truncated -= 0x1_0000; // (float)v rounded up past a BF16 boundary; step back toward zero
                lo = BitConverter.UInt32BitsToSingle(truncated);
            }

            double hi = BitConverter.UInt32BitsToSingle(truncated + 0x1_0000);
            double dLo = Math.Abs(v - lo), dHi = Math.Abs(hi - v);
            ushort want = (ushort)(truncated >> 16);
            if (dHi < dLo || (dHi == dLo && (want & 1) == 1))
            {
                want++;
            }

            Assert.True(want == got, $"{v:R}: expected 0x{want:X4}, got 0x{got:X4}");
        }
    }

    [Fact]
    public void UnalignedDataIsReadCorrectly()
    {
        // A 1-byte U8 tensor first puts the F32 tensor at an odd offset.
        using var dir = new TempDir();
        string header = """{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"b":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}}""";
        var data = new byte[9];
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(1), 1.25f);
        BinaryPrimitives.WriteSingleLittleEndian(data.AsSpan(5), -3f);
        string path = RawSafeTensors.Write(dir, "u.safetensors", header, data);
        using var file = SafeTensorsFile.Open(path);
        Assert.Equal([1.25f, -3f], file.ReadFloats("b"));
        using var bf = file.Read("b", DType.BF16);
        Assert.Equal([Bf16.FromFloat(1.25f), Bf16.FromFloat(-3f)], bf.AsBf16().ToArray());
    }
}
