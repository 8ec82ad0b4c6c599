using TensorPrimitives = System.Numerics.Tensors.TensorPrimitives;

namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// Inference attention against a KV cache: new queries at positions past … past+Tn−1 attend to every
/// cached key up to their own position (causal, grouped-query, scale 1/√HS). Forward only; the
/// training kernel (<see cref="Attention"/>) is its reference on the full sequence.
/// </summary>
internal static unsafe class AttentionDecode
{
    /// <summary>
    /// q (B,Tn,NH,HS); kCache, vCache (B,TMax,NKV,HS) with positions 0 … past+Tn−1 filled -> o (B,Tn,NH,HS).
    /// <paramref name="spec"/>: sliding window (the query at position p sees keys p − window + 1 … p only), scale
    /// and soft-capping, as in <see cref="Attention.Forward"/>.
    /// </summary>
    public static void Forward(float* q, float* kCache, float* vCache, float* o, int b, int tn, int past, int tmax, int nh, int nkv, int hs, AttentionSpec spec = default)
    {
        spec.Validate();
        int window = spec.Window;
        float cap = spec.Softcap;
        if (b < 0 || tn < 0 || past < 0 || past + tn > tmax)
        {
            throw new ArgumentOutOfRangeException(nameof(past), $"AttentionDecode: B={b}, Tn={tn}, past={past} do not fit a cache of {tmax} positions.");
        }

        if (nh <= 0 || nkv <= 0 || nh % nkv != 0 || hs <= 0)
        {
            throw new ArgumentException($"AttentionDecode: NH={nh} must be a positive multiple of NKV={nkv}, HS={hs} positive.", nameof(nkv));
        }

        if (b == 0 || tn == 0)
        {
            return;
        }

        nint qp = (nint)q, kp = (nint)kCache, vp = (nint)vCache, op = (nint)o;
        int group = nh / nkv;
        float scale = spec.ScaleFor(hs);
        long kvStride = (long)nkv * hs, qStride = (long)nh * hs;
        CpuParallel.For(b * nh, 1, (start, end) =>
        {
            var scores = new float[past + tn];
            for (int unit = start; unit < end; unit++)
            {
                int bi = unit / nh, h = unit % nh, kvh = h / group;
                float* kBase = (float*)kp + ((long)bi * tmax * kvStride) + ((long)kvh * hs);
                float* vBase = (float*)vp + ((long)bi * tmax * kvStride) + ((long)kvh * hs);
                for (int i = 0; i < tn; i++)
                {
                    long row = (((long)bi * tn) + i) * qStride + ((long)h * hs);
                    var qRow = new ReadOnlySpan<float>((float*)qp + row, hs);
                    int last = past + i, first = window > 0 ? Math.Max(0, last + 1 - window) : 0, keys = last + 1 - first;
                    var s = scores.AsSpan(0, keys);
                    for (int j = 0; j < keys; j++)
                    {
                        s[j] = TensorPrimitives.Dot(qRow, new ReadOnlySpan<float>(kBase + ((first + j) * kvStride), hs)) * scale;
                    }

                    if (cap > 0)
                    {
                        Softcap.Apply(s, cap);
                    }

                    float max = TensorPrimitives.Max<float>(s);
                    TensorPrimitives.Subtract(s, max, s);
                    TensorPrimitives.Exp(s, s);
                    float inv = 1f / TensorPrimitives.Sum<float>(s);
                    var oRow = new Span<float>((float*)op + row, hs);
                    oRow.Clear();
                    for (int j = 0; j < keys; j++)
                    {
                        TensorPrimitives.MultiplyAdd(new ReadOnlySpan<float>(vBase + ((first + j) * kvStride), hs), s[j] * inv, oRow, oRow);
                    }
                }
            }
        });
    }
}
