using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>Llama MLP: down_proj(silu(gate_proj(x)) · up_proj(x)). Saves the input, gate, up and the gated product.</summary>
public sealed class Mlp : IDisposable
{
    private readonly SavedTensors saved = new();
    private Tensor? input;
    private Tensor? gate;
    private Tensor? up;
    private Tensor? act;

    /// <summary>Assembles the block; gate/up (I,C) and down (C,I) must agree.</summary>
    public Mlp(Linear gateProj, Linear upProj, Linear downProj)
    {
        if (upProj.OutFeatures != gateProj.OutFeatures || upProj.InFeatures != gateProj.InFeatures
            || downProj.InFeatures != gateProj.OutFeatures || downProj.OutFeatures != gateProj.InFeatures)
        {
            throw new ArgumentException($"MLP shapes disagree: '{gateProj.Weight.Name}' {Tensor.Format(gateProj.Weight.Value.Shape)}, '{upProj.Weight.Name}' {Tensor.Format(upProj.Weight.Value.Shape)}, '{downProj.Weight.Name}' {Tensor.Format(downProj.Weight.Value.Shape)}");
        }

        GateProj = gateProj;
        UpProj = upProj;
        DownProj = downProj;
    }

    /// <summary>gate_proj (I,C).</summary>
    public Linear GateProj { get; }

    /// <summary>up_proj (I,C).</summary>
    public Linear UpProj { get; }

    /// <summary>down_proj (C,I).</summary>
    public Linear DownProj { get; }

    /// <summary>Whether activations from a Forward are held.</summary>
    public bool HasActivations => !saved.IsEmpty;

    /// <summary>x (N,C) -> y (N,C). <paramref name="x"/> must stay alive until Backward.</summary>
    public void Forward(Tensor x, Tensor y)
    {
        saved.Release();
        input = x;
        var backend = x.Backend;
        int n = x.Dim(0), inter = GateProj.OutFeatures;
        gate = saved.Keep(backend, n, inter);
        up = saved.Keep(backend, n, inter);
        act = saved.Keep(backend, n, inter);
        GateProj.Forward(x, gate);
        UpProj.Forward(x, up);
        backend.SwiGluForward(gate, up, act);
        DownProj.Forward(act, y);
    }

    /// <summary>dy (N,C) -> dx (N,C) overwritten; weight gradients for trainable projections. Releases the activations.</summary>
    public void Backward(Tensor dy, Tensor dx)
    {
        if (saved.IsEmpty)
        {
            throw new InvalidOperationException("Mlp.Backward called without a preceding Forward");
        }

        var backend = dy.Backend;
        int n = dy.Dim(0), inter = GateProj.OutFeatures;
        using var dact = backend.Empty(DType.F32, n, inter);
        DownProj.Backward(dy, act!, dact);
        using var dgate = backend.Empty(DType.F32, n, inter);
        using var dup = backend.Empty(DType.F32, n, inter);
        backend.SwiGluBackward(dact, gate!, up!, dgate, dup);
        GateProj.Backward(dgate, input!, dx);
        UpProj.Backward(dup, input!, dx, accumulateDx: true);
        ReleaseActivations();
    }

    /// <summary>Drops saved activations.</summary>
    public void ReleaseActivations()
    {
        saved.Release();
        (input, gate, up, act) = (null, null, null, null);
        foreach (var p in Projections())
        {
            p.ReleaseActivations();
        }
    }

    /// <summary>Projections.</summary>
    public IEnumerable<Linear> Projections() => [GateProj, UpProj, DownProj];

    /// <inheritdoc/>
    public void Dispose()
    {
        ReleaseActivations();
        foreach (var p in Projections())
        {
            p.Dispose();
        }
    }
}
