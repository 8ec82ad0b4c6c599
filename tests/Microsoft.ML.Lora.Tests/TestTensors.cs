using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests;

/// <summary>Edits of tensor values that work on any backend (through a host copy where the tensor lives on a device).</summary>
internal static class TestTensors
{
    /// <summary>Runs <paramref name="edit"/> over the F32 values of <paramref name="t"/> and keeps the result.</summary>
    public static void Edit(Tensor t, Action<Span<float>> edit)
    {
        if (t.IsHost)
        {
            edit(t.AsF32());
            return;
        }

        using var host = t.ToHost();
        edit(host.AsF32());
        t.Backend.CopyFromHost(host, t);
    }

    /// <summary>Fills <paramref name="t"/> with N(0, std²) draws from <paramref name="random"/>.</summary>
    public static void FillNormal(Tensor t, Random random, double std) => Edit(t, s => RandomFill.Normal(s, random, std));
}
