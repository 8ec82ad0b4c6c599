using System.Runtime.InteropServices;
using Microsoft.ML.Lora.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using LoraTensor = Microsoft.ML.Lora.Tensors.Tensor;
using TorchTensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>
/// An NF4 tensor on a torch device, still packed: the 4-bit codes (uint8, two per byte, as
/// <see cref="Nf4Layout"/> orders them) and the block absmax, F32 per block, or with double
/// quantization int8 per block plus an F32 scale per group of 256 blocks and the F32 mean.
/// </summary>
internal sealed class Nf4Storage : DeviceStorage
{
    private Nf4Storage(TorchTensor codes, TorchTensor? absmax, TorchTensor? quantized, TorchTensor? scales, TorchTensor? mean)
    {
        Codes = codes.DetachFromDisposeScope();
        Absmax = absmax?.DetachFromDisposeScope();
        Quantized = quantized?.DetachFromDisposeScope();
        Scales = scales?.DetachFromDisposeScope();
        Mean = mean?.DetachFromDisposeScope();
    }

    /// <summary>Packed codes (⌈n/2⌉ bytes).</summary>
    public TorchTensor Codes { get; }

    /// <summary>F32 absmax per block (without double quantization).</summary>
    public TorchTensor? Absmax { get; }

    /// <summary>int8 absmax code per block (double quantization).</summary>
    public TorchTensor? Quantized { get; }

    /// <summary>F32 scale per group of blocks (double quantization).</summary>
    public TorchTensor? Scales { get; }

    /// <summary>F32 mean of the absmax, one element (double quantization).</summary>
    public TorchTensor? Mean { get; }

    /// <summary>Splits a host NF4 tensor's storage into its parts on <paramref name="device"/>.</summary>
    public static Nf4Storage FromHost(LoraTensor host, Device device)
    {
        var layout = host.Nf4Layout;
        var bytes = host.AsBytes();
        var codes = Move(torch.tensor(bytes[..checked((int)layout.CodeBytes)].ToArray()), device);
        if (!layout.DoubleQuant)
        {
            return new Nf4Storage(codes, Move(Floats(bytes, layout.AbsmaxOffset, layout.Blocks), device), null, null, null);
        }

        var q = MemoryMarshal.Cast<byte, sbyte>(bytes.Slice(checked((int)layout.AbsmaxOffset), checked((int)layout.Blocks))).ToArray();
        return new Nf4Storage(
            codes,
            null,
            Move(torch.tensor(q), device),
            Move(Floats(bytes, layout.ScalesOffset, layout.Groups), device),
            Move(Floats(bytes, layout.MeanOffset, 1), device));
    }

    /// <summary>The host tensor in <see cref="Nf4Layout"/> (padding between the parts zeroed).</summary>
    public LoraTensor ToHost(LoraTensor t)
    {
        var layout = t.Nf4Layout;
        var host = LoraTensor.EmptyNf4(layout.DoubleQuant, t.Shape.ToArray());
        var bytes = host.AsBytes();
        bytes.Clear();
        Read(Codes, bytes, 0);
        if (!layout.DoubleQuant)
        {
            Read(Absmax!, bytes, layout.AbsmaxOffset);
        }
        else
        {
            Read(Quantized!, bytes, layout.AbsmaxOffset);
            Read(Scales!, bytes, layout.ScalesOffset);
            Read(Mean!, bytes, layout.MeanOffset);
        }

        return host;
    }

    /// <summary>The dequantized absmax of every block (F32): as stored, or max(0, q·scale/127 + mean) with double quantization.</summary>
    public TorchTensor BlockAbsmax()
    {
        if (Absmax is not null)
        {
            return Absmax;
        }

        long blocks = Quantized!.shape[0];
        var perBlock = Scales!.repeat_interleave(Nf4Layout.GroupSize).narrow(0, 0, blocks);
        return Quantized.to(ScalarType.Float32).mul(perBlock).div(127f).add(Mean!).clamp_min(0);
    }

    /// <summary>A deep copy.</summary>
    public Nf4Storage Clone() => new(Codes.clone(), Absmax?.clone(), Quantized?.clone(), Scales?.clone(), Mean?.clone());

    /// <summary>New handles on the same memory (for views).</summary>
    public Nf4Storage Alias() => new(Codes.alias(), Absmax?.alias(), Quantized?.alias(), Scales?.alias(), Mean?.alias());

    /// <inheritdoc/>
    protected override void Dispose(bool disposing)
    {
        Codes.Dispose();
        Absmax?.Dispose();
        Quantized?.Dispose();
        Scales?.Dispose();
        Mean?.Dispose();
    }

    private static TorchTensor Floats(Span<byte> bytes, long offset, long count) =>
        torch.tensor(MemoryMarshal.Cast<byte, float>(bytes.Slice(checked((int)offset), checked((int)(count * sizeof(float))))).ToArray());

    private static TorchTensor Move(TorchTensor cpu, Device device)
    {
        using (cpu)
        {
            return cpu.to(device, copy: true);
        }
    }

    private static void Read(TorchTensor part, Span<byte> destination, long offset)
    {
        using var cpu = part.cpu();
        var source = cpu.bytes;
        source.CopyTo(destination.Slice(checked((int)offset), source.Length));
    }
}
