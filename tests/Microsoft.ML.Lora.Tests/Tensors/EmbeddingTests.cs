using Microsoft.ML.Lora.Tensors;
using static Microsoft.ML.Lora.Tests.Tensors.KernelTestUtil;

namespace Microsoft.ML.Lora.Tests.Tensors;

public sealed unsafe class EmbeddingTests
{
    // Gather copies and ScatterAdd adds float values in the reference's order, so both are exact: tolerance 0.
    private const double Exact = 0;

    [Fact]
    public void ReferenceBackwardMatchesFiniteDifferences()
    {
        var rng = new Random(1);
        const int c = 3, v = 4;
        int[] ids = { 2, 0, 2, 3, 2 };
        var table = RandomArray(rng, v * c);
        var dout = RandomArray(rng, ids.Length * c);
        FiniteDifference.Check(p => EmbeddingReference.Forward(ids, p, c), table, dout, EmbeddingReference.Backward(ids, dout, c, v), "dtable");
    }

    [Fact]
    public void GatherAndScatterAddMatchReference()
    {
        var rng = new Random(2);
        foreach (int n in new[] { 0, 1, 7, 300 })
        {
            for (int c = 0; c <= 70; c++)
            {
                Check(rng, n, c, 11);
            }
        }

        Check(rng, 50, 600, 5); // three column blocks and many duplicate ids
    }

    [Fact]
    public void GatherBf16WidensBitsToFloat()
    {
        // bf16 0x3FC0 is 1.5f (0x3FC00000), 0xC030 is −2.75f (0xC0300000), 0x0001 is the smallest subnormal bit pattern.
        ushort[] table = { 0x3FC0, 0xC030, 0x0001, 0x7F80 };
        int[] ids = { 1, 0, 1 };
        var output = new float[6];
        fixed (int* ip = ids)
        fixed (ushort* tp = table)
        fixed (float* op = output)
        {
            Embedding.Gather(ip, tp, op, 3, 2, 2);
        }

        Assert.Equal(new[] { 0x00010000, 0x7F800000, 0x3FC00000, unchecked((int)0xC0300000), 0x00010000, 0x7F800000 }, Array.ConvertAll(output, BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void OutOfRangeIdNamesPositionIdAndVocabulary()
    {
        int[] ids = { 0, 3, 9, 1 };
        var table = new float[8];
        var output = new float[8];
        var e = Assert.Throws<ArgumentOutOfRangeException>(() => Gather(ids, table, output, 4, 2, 4));
        Assert.Contains("position 2", e.Message);
        Assert.Contains("token id 9", e.Message);
        Assert.Contains("[0, 4)", e.Message);
        Assert.All(output, x => Assert.Equal(0f, x)); // nothing written before the check

        ids[2] = -1;
        Assert.Contains("token id -1", Assert.Throws<ArgumentOutOfRangeException>(() => Gather(ids, table, output, 4, 2, 4)).Message);
    }

    private static int Gather(int[] ids, float[] table, float[] output, int n, int c, int v)
    {
        fixed (int* ip = ids)
        fixed (float* tp = table, op = output)
        {
            Embedding.Gather(ip, tp, op, n, c, v);
        }

        return 0;
    }

    private static void Check(Random rng, int n, int c, int v)
    {
        var ids = new int[n];
        for (int i = 0; i < n; i++)
        {
            ids[i] = rng.Next(v);
        }

        var tableD = RandomArray(rng, v * c);
        var doutD = RandomArray(rng, n * c);
        var dtable0 = RandomArray(rng, v * c);
        float[] table = ToFloat(tableD), dout = ToFloat(doutD), dtable = ToFloat(dtable0);
        var output = new float[n * c];
        var bf16 = new ushort[v * c];
        var outputBf16 = new float[n * c];
        Bf16.FromFloat(table, bf16);
        fixed (int* ip = ids)
        fixed (float* tp = table, op = output, dp = dout, dtp = dtable, obp = outputBf16)
        fixed (ushort* bp = bf16)
        {
            Embedding.Gather(ip, tp, op, n, c, v);
            Embedding.Gather(ip, bp, obp, n, c, v);
            Embedding.ScatterAdd(ip, dp, dtp, n, c, v);
        }

        string at = $"N={n} C={c}";
        AssertClose(EmbeddingReference.Forward(ids, tableD, c), output, Exact, $"gather {at}");

        var widened = new double[v * c];
        for (int i = 0; i < widened.Length; i++)
        {
            widened[i] = Bf16.ToFloat(bf16[i]);
        }

        AssertClose(EmbeddingReference.Forward(ids, widened, c), outputBf16, Exact, $"gather bf16 {at}");

        // The float kernel adds each dout row into the float table in id order; replay that in float.
        var expected = ToFloat(dtable0);
        for (int i = 0; i < n; i++)
        {
            for (int j = 0; j < c; j++)
            {
                expected[(ids[i] * c) + j] += dout[(i * c) + j];
            }
        }

        AssertClose(ToDouble(expected), dtable, Exact, $"scatter-add {at}");
    }
}
