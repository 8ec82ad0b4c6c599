using System.Runtime.CompilerServices;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// One low-rank adapter on a Linear: y += s · (drop(x)·Aᵀ)·Bᵀ with A (r,C), B (OC,r), s = α/r
/// (or α/√r for rsLoRA). Parameter names follow PEFT: <c>{module}.lora_A.{adapter}.weight</c>.
/// Backward by hand: with u = s·drop(x)·Aᵀ (N,r) saved and g = s·dy·B (N,r):
/// dB += dyᵀ·u, dA += gᵀ·drop(x), dx += drop'(g·A).
/// Dropout masks come from a hash of (seed, adapter salt, element index), so recomputing a layer or
/// resuming a run reproduces them exactly.
/// </summary>
public sealed unsafe class LoraAdapter : IDisposable
{
    private readonly SavedTensors saved = new();
    private readonly ulong salt;
    private Tensor? dropped;
    private Tensor? u;
    private ulong maskSeed;

    /// <summary>Creates an adapter owning <paramref name="a"/> (r,C) and <paramref name="b"/> (OC,r).</summary>
    public LoraAdapter(string moduleName, string adapterName, Parameter a, Parameter b, float scale, float dropout, LoraRuntime runtime)
    {
        if (a.Value.Rank != 2 || b.Value.Rank != 2 || a.Value.Dim(0) != b.Value.Dim(1) || a.Value.DType != DType.F32 || b.Value.DType != DType.F32)
        {
            throw new ArgumentException($"{moduleName}: adapter '{adapterName}' needs F32 lora_A (r, in) and lora_B (out, r); got {a.Value} and {b.Value}");
        }

        if (!(dropout >= 0 && dropout < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(dropout), dropout, $"{moduleName}: LoRA dropout must be in [0, 1)");
        }

        ModuleName = moduleName;
        AdapterName = adapterName;
        A = a;
        B = b;
        Scale = scale;
        Dropout = dropout;
        Runtime = runtime;
        salt = Mix(StableHash(moduleName + "/" + adapterName));
    }

    /// <summary>Module path, e.g. <c>model.layers.0.self_attn.q_proj</c>.</summary>
    public string ModuleName { get; }

    /// <summary>Adapter name (PEFT's default is "default").</summary>
    public string AdapterName { get; }

    /// <summary>lora_A (r,C).</summary>
    public Parameter A { get; }

    /// <summary>lora_B (OC,r).</summary>
    public Parameter B { get; }

    /// <summary>r.</summary>
    public int Rank => A.Value.Dim(0);

    /// <summary>s = α/r or α/√r.</summary>
    public float Scale { get; }

    /// <summary>Dropout probability on the adapter's input (training passes only).</summary>
    public float Dropout { get; }

    /// <summary>The model's shared per-pass state.</summary>
    public LoraRuntime Runtime { get; }

    /// <summary>Both parameters.</summary>
    public IEnumerable<Parameter> Parameters() => [A, B];

    /// <summary>x (N,C) -> y (N,OC) += s·(drop(x)·Aᵀ)·Bᵀ. Keeps what Backward needs on training passes.</summary>
    public void Forward(Tensor x, Tensor y)
    {
        saved.Release();
        int n = x.Dim(0), c = A.Value.Dim(1), oc = B.Value.Dim(0), r = Rank;
        bool training = Runtime.Training;
        Tensor input = x;
        Tensor? temp = null;
        try
        {
            if (training && Dropout > 0)
            {
                maskSeed = Runtime.DropoutSeed;
                dropped = saved.Keep(n, c);
                ApplyMask(x.F32Ptr, dropped.F32Ptr, x.Length);
                input = dropped;
            }

            u = training ? saved.Keep(n, r) : (temp = Tensor.Empty(DType.F32, n, r));

            // u (N,r) = s · input (N,C) · Aᵀ
            Gemm.Run(false, true, n, r, c, input.F32Ptr, c, A.Value.F32Ptr, c, u.F32Ptr, r, accumulate: false);
            Scal(u.F32Ptr, u.Length, Scale);

            // y (N,OC) += u · Bᵀ
            Gemm.Run(false, true, n, oc, r, u.F32Ptr, r, B.Value.F32Ptr, r, y.F32Ptr, oc, accumulate: true);
        }
        finally
        {
            temp?.Dispose();
            if (!training)
            {
                ReleaseActivations();
            }
        }
    }

    /// <summary>dy (N,OC), the Forward input x -> dx (N,C) += adapter path; dA, dB accumulated when trainable.</summary>
    public void Backward(Tensor dy, Tensor x, Tensor? dx)
    {
        if (u is null)
        {
            throw new InvalidOperationException($"{ModuleName}: adapter '{AdapterName}' Backward without a training Forward");
        }

        int n = x.Dim(0), c = A.Value.Dim(1), oc = B.Value.Dim(0), r = Rank;
        Tensor input = dropped ?? x;
        using var g = Tensor.Empty(DType.F32, n, r);

        // g (N,r) = s · dy (N,OC) · B (OC,r)
        Gemm.Run(false, false, n, r, oc, dy.F32Ptr, oc, B.Value.F32Ptr, r, g.F32Ptr, r, accumulate: false);
        Scal(g.F32Ptr, g.Length, Scale);
        if (B.Trainable)
        {
            // dB (OC,r) += dyᵀ (OC,N) · u (N,r)
            Gemm.Run(true, false, oc, r, n, dy.F32Ptr, oc, u.F32Ptr, r, B.Grad!.F32Ptr, r, accumulate: true);
        }

        if (A.Trainable)
        {
            // dA (r,C) += gᵀ (r,N) · input (N,C)
            Gemm.Run(true, false, r, c, n, g.F32Ptr, r, input.F32Ptr, c, A.Grad!.F32Ptr, c, accumulate: true);
        }

        if (dx is not null)
        {
            if (dropped is null)
            {
                // dx (N,C) += g (N,r) · A (r,C)
                Gemm.Run(false, false, n, c, r, g.F32Ptr, r, A.Value.F32Ptr, c, dx.F32Ptr, c, accumulate: true);
            }
            else
            {
                using var through = Tensor.Empty(DType.F32, n, c);
                Gemm.Run(false, false, n, c, r, g.F32Ptr, r, A.Value.F32Ptr, c, through.F32Ptr, c, accumulate: false);
                AccumulateMasked(through.F32Ptr, dx.F32Ptr, through.Length);
            }
        }

        ReleaseActivations();
    }

    /// <summary>Drops saved activations.</summary>
    public void ReleaseActivations()
    {
        saved.Release();
        (dropped, u) = (null, null);
    }

    /// <summary>Δ = s·B·A (OC,C) as a new F32 tensor: what merging adds to the base weight.</summary>
    public Tensor Delta()
    {
        int oc = B.Value.Dim(0), c = A.Value.Dim(1);
        var delta = Tensor.Empty(DType.F32, oc, c);
        Gemm.Run(false, false, oc, c, Rank, B.Value.F32Ptr, Rank, A.Value.F32Ptr, c, delta.F32Ptr, c, accumulate: false);
        Scal(delta.F32Ptr, delta.Length, Scale);
        return delta;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ReleaseActivations();
        A.Dispose();
        B.Dispose();
    }

    /// <summary>SplitMix64 finaliser: a bijective 64-bit mix with good avalanche.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    // FNV-1a over UTF-16 code units: stable across processes (string.GetHashCode is randomised).
    private static ulong StableHash(string text)
    {
        ulong h = 0xCBF29CE484222325UL;
        foreach (char ch in text)
        {
            h = (h ^ ch) * 0x100000001B3UL;
        }

        return h;
    }

    private static void Scal(float* p, long n, float s)
    {
        var span = new Span<float>(p, checked((int)n));
        System.Numerics.Tensors.TensorPrimitives.Multiply(span, s, span);
    }

    // Keep element i when its 24-bit hash fraction is ≥ p; kept elements are scaled by 1/(1−p).
    private bool Keep(long i, uint threshold) => (uint)(Mix(maskSeed ^ salt ^ Mix((ulong)i)) >> 40) >= threshold;

    private uint Threshold => (uint)Math.Round(Dropout * (1 << 24));

    private void ApplyMask(float* x, float* output, long n)
    {
        uint threshold = Threshold;
        float keepScale = 1f / (1f - Dropout);
        for (long i = 0; i < n; i++)
        {
            output[i] = Keep(i, threshold) ? x[i] * keepScale : 0f;
        }
    }

    private void AccumulateMasked(float* source, float* dx, long n)
    {
        uint threshold = Threshold;
        float keepScale = 1f / (1f - Dropout);
        for (long i = 0; i < n; i++)
        {
            if (Keep(i, threshold))
            {
                dx[i] += source[i] * keepScale;
            }
        }
    }
}
