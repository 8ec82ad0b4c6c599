using Microsoft.ML.Lora.Modules;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Lora;

/// <summary>Creates an adapter's A (r, d_in) and B (d_out, r) for a Linear, as <see cref="LoraInit"/> says.</summary>
internal static class LoraInitializer
{
    /// <summary>
    /// New A and B for <paramref name="linear"/>. For PiSSA the base weight is replaced by its residual
    /// W − s·B·A, so the adapted model still starts equal to the base.
    /// </summary>
    public static (Tensor A, Tensor B) Create(Linear linear, int rank, float scale, LoraInit init, Random random)
    {
        int dIn = linear.InFeatures, dOut = linear.OutFeatures;
        if (init == LoraInit.Pissa)
        {
            return Pissa.Initialize(linear, rank, scale, random);
        }

        var a = Tensor.Empty(DType.F32, rank, dIn);
        var span = a.AsF32();
        switch (init)
        {
            case LoraInit.Default:
                RandomFill.Normal(span, random, std: 1.0 / dIn);
                break;
            case LoraInit.Gaussian:
                RandomFill.Normal(span, random, std: 1.0 / rank);
                break;
            case LoraInit.KaimingUniform:
                double bound = 1.0 / Math.Sqrt(dIn);
                for (int i = 0; i < span.Length; i++)
                {
                    span[i] = (float)(((2 * random.NextDouble()) - 1) * bound);
                }

                break;
            default:
                a.Dispose();
                throw new ArgumentOutOfRangeException(nameof(init), init, "unknown LoRA init");
        }

        return (a, Tensor.Zeros(DType.F32, dOut, rank));
    }
}
