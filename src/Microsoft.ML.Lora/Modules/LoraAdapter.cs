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
public sealed class LoraAdapter : IDisposable
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
        salt = DropoutMask.Mix(StableHash(moduleName + "/" + adapterName));
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
        var backend = x.Backend;
        int n = x.Dim(0), c = A.Value.Dim(1), r = Rank;
        bool training = Runtime.Training;
        Tensor input = x;
        Tensor? temp = null;
        try
        {
            if (training && Dropout > 0)
            {
                maskSeed = Runtime.DropoutSeed;
                dropped = saved.Keep(backend, n, c);
                backend.DropoutForward(x, dropped, Dropout, maskSeed ^ salt);
                input = dropped;
            }

            u = training ? saved.Keep(backend, n, r) : (temp = backend.Empty(DType.F32, n, r));

            // u (N,r) = s · input (N,C) · Aᵀ
            backend.MatMul(input, false, A.Value, true, u, accumulate: false);
            backend.Scale(u, Scale);

            // y (N,OC) += u · Bᵀ
            backend.MatMul(u, false, B.Value, true, y, accumulate: true);
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

        var backend = dy.Backend;
        int n = x.Dim(0), c = A.Value.Dim(1), r = Rank;
        Tensor input = dropped ?? x;
        using var g = backend.Empty(DType.F32, n, r);

        // g (N,r) = s · dy (N,OC) · B (OC,r)
        backend.MatMul(dy, false, B.Value, false, g, accumulate: false);
        backend.Scale(g, Scale);
        if (B.Trainable)
        {
            // dB (OC,r) += dyᵀ (OC,N) · u (N,r)
            backend.MatMul(dy, true, u, false, B.Grad!, accumulate: true);
        }

        if (A.Trainable)
        {
            // dA (r,C) += gᵀ (r,N) · input (N,C)
            backend.MatMul(g, true, input, false, A.Grad!, accumulate: true);
        }

        if (dx is not null)
        {
            if (dropped is null)
            {
                // dx (N,C) += g (N,r) · A (r,C)
                backend.MatMul(g, false, A.Value, false, dx, accumulate: true);
            }
            else
            {
                using var through = backend.Empty(DType.F32, n, c);
                backend.MatMul(g, false, A.Value, false, through, accumulate: false);
                backend.AccumulateMasked(through, dx, Dropout, maskSeed ^ salt);
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
        var backend = A.Value.Backend;
        var delta = backend.Empty(DType.F32, B.Value.Dim(0), A.Value.Dim(1));
        backend.MatMul(B.Value, false, A.Value, false, delta, accumulate: false);
        backend.Scale(delta, Scale);
        return delta;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        ReleaseActivations();
        A.Dispose();
        B.Dispose();
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
}
