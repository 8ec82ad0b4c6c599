using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>Tensor storage: alignment, pooling, views, dtype conversion.</summary>
public sealed unsafe class TensorStorageTests
{
    [Theory]
    [InlineData(1.0f, 0x3F80)]
    [InlineData(-2.0f, 0xC000)]
    [InlineData(0.0f, 0x0000)]
    [InlineData(-0.0f, 0x8000)]
    [InlineData(float.PositiveInfinity, 0x7F80)]
    [InlineData(1.00390625f, 0x3F80)] // 1 + 2^-8: a tie between 0x3F80 and 0x3F81 rounds to the even 0x3F80
    [InlineData(1.01171875f, 0x3F82)] // 1 + 3·2^-8: a tie between 0x3F81 and 0x3F82 rounds to the even 0x3F82
    [InlineData(3.4028235e38f, 0x7F80)] // float.MaxValue rounds to +inf, as PyTorch does
    public void Bf16RoundsToNearestEven(float value, int expectedBits)
    {
        Assert.Equal((ushort)expectedBits, Bf16.FromFloat(value));
    }

    [Fact]
    public void Bf16RoundsUpJustAboveATie()
    {
        Assert.Equal((ushort)0x3F81, Bf16.FromFloat(BitConverter.Int32BitsToSingle(0x3F80_8001)));
        Assert.Equal((ushort)0x3F80, Bf16.FromFloat(BitConverter.Int32BitsToSingle(0x3F80_7FFF)));
    }

    [Fact]
    public void Bf16KeepsNaNAndRoundTripsRepresentableValues()
    {
        Assert.True(float.IsNaN(Bf16.ToFloat(Bf16.FromFloat(float.NaN))));
        Assert.True(float.IsNaN(Bf16.ToFloat(Bf16.FromFloat(BitConverter.Int32BitsToSingle(0x7F80_0001)))));
        for (int bits = 0; bits < 0x10000; bits += 7)
        {
            float f = Bf16.ToFloat((ushort)bits);
            if (!float.IsNaN(f))
            {
                Assert.Equal((ushort)bits, Bf16.FromFloat(f));
            }
        }
    }

    [Fact]
    public void StorageIsAlignedPooledAndReturnedOnDispose()
    {
        // A size no other test allocates, so parallel tests cannot take this block from the pool.
        // (NativePool's byte counters are process-wide and move with every test, so they are not asserted.)
        var t = Tensor.Zeros(DType.F32, 7, 1009);
        Assert.Equal(0, (long)t.Data % NativePool.Alignment);
        Assert.All(t.ToFloatArray(), x => Assert.Equal(0f, x));
        void* first = t.Data;
        t.Dispose();
        t.Dispose();
        Assert.True(t.IsDisposed);
        Assert.Throws<ObjectDisposedException>(() => t.AsF32());

        using var again = Tensor.Empty(DType.F32, 1009, 7);
        Assert.Equal((nint)first, (nint)again.Data);
    }

    [Fact]
    public void ViewsShareMemoryAndCheckElementCount()
    {
        using var t = Tensor.FromF32([1, 2, 3, 4, 5, 6], 2, 3);
        using var v = t.View(3, 2);
        v.AsF32()[5] = 60;
        Assert.Equal(60, t.GetFloat(5));
        Assert.Throws<ArgumentException>(() => t.View(4, 2));
        Assert.Throws<ArgumentException>(() => Tensor.FromF32([1, 2, 3], 2, 2));
        Assert.Throws<InvalidOperationException>(() => t.AsBf16());
    }

    [Fact]
    public void ConversionBetweenF32AndBf16RoundsEachElement()
    {
        float[] values = [1.00390625f, -3.14159f, 1e-20f, 65504f];
        using var f32 = Tensor.FromF32(values, 4);
        using var bf16 = f32.To(DType.BF16);
        using var back = bf16.To(DType.F32);
        for (int i = 0; i < values.Length; i++)
        {
            Assert.Equal(Bf16.ToFloat(Bf16.FromFloat(values[i])), back.GetFloat(i));
        }

        Assert.Equal(DType.BF16, DTypes.Parse("BF16"));
        Assert.Throws<ArgumentException>(() => DTypes.Parse("f16"));
    }
}
