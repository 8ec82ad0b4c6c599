using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// Llama MLP: down_proj(silu(gate_proj(x)) · up_proj(x)) (Gemma: gelu_tanh instead of silu), gate and up as two projections or one fused
/// gate_up_proj (Phi-3: its first I output columns are the gate, the next I the up projection). Saves the
/// input, gate, up and the gated product.
/// </summary>
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
        Intermediate = gateProj.OutFeatures;
    }

    /// <summary>Assembles the block with one fused gate_up_proj (2·I, C) and down_proj (C, I).</summary>
    public Mlp(Linear gateUpProj, Linear downProj)
    {
        if (gateUpProj.OutFeatures != 2 * downProj.InFeatures || downProj.OutFeatures != gateUpProj.InFeatures)
        {
            throw new ArgumentException($"MLP shapes disagree: '{gateUpProj.Weight.Name}' {Tensor.Format(gateUpProj.Weight.Value.Shape)} must be (2·I, C) for '{downProj.Weight.Name}' {Tensor.Format(downProj.Weight.Value.Shape)} (C, I)");
        }

        GateUpProj = gateUpProj;
        DownProj = downProj;
        Intermediate = downProj.InFeatures;
    }

    /// <summary>gate_proj (I,C); null when fused (<see cref="GateUpProj"/>).</summary>
    public Linear? GateProj { get; }

    /// <summary>up_proj (I,C); null when fused.</summary>
    public Linear? UpProj { get; }

    /// <summary>The fused gate_up_proj (2·I, C) of Phi-3, or null.</summary>
    public Linear? GateUpProj { get; }

    /// <summary>I, the intermediate size.</summary>
    public int Intermediate { get; }

    /// <summary>The gate's activation: SiLU (SwiGLU, Llama's) or tanh-approximated GELU (GeGLU, Gemma's).</summary>
    public bool GeluGate { get; init; }

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
        int n = x.Dim(0), inter = Intermediate;
        gate = saved.Keep(backend, n, inter);
        up = saved.Keep(backend, n, inter);
        act = saved.Keep(backend, n, inter);
        if (GateUpProj is null)
        {
            GateProj!.Forward(x, gate);
            UpProj!.Forward(x, up);
        }
        else
        {
            using var gateUp = backend.Empty(DType.F32, n, 2 * inter);
            GateUpProj.Forward(x, gateUp);
            backend.CopyColumns(gateUp, 0, gate, 0, inter);
            backend.CopyColumns(gateUp, inter, up, 0, inter);
        }

        if (GeluGate)
        {
            backend.GeGluForward(gate, up, act);
        }
        else
        {
            backend.SwiGluForward(gate, up, act);
        }

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
        int n = dy.Dim(0), inter = Intermediate;
        using var dact = backend.Empty(DType.F32, n, inter);
        DownProj.Backward(dy, act!, dact);
        using var dgate = backend.Empty(DType.F32, n, inter);
        using var dup = backend.Empty(DType.F32, n, inter);
        if (GeluGate)
        {
            backend.GeGluBackward(dact, gate!, up!, dgate, dup);
        }
        else
        {
            backend.SwiGluBackward(dact, gate!, up!, dgate, dup);
        }

        if (GateUpProj is null)
        {
            GateProj!.Backward(dgate, input!, dx);
            UpProj!.Backward(dup, input!, dx, accumulateDx: true);
        }
        else
        {
            using var dgateUp = backend.Empty(DType.F32, n, 2 * inter);
            backend.CopyColumns(dgate, 0, dgateUp, 0, inter);
            backend.CopyColumns(dup, 0, dgateUp, inter, inter);
            GateUpProj.Backward(dgateUp, input!, dx);
        }

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

    /// <summary>Projections: gate and up (or the fused gate_up) and down.</summary>
    public IEnumerable<Linear> Projections() => GateUpProj is { } fused ? [fused, DownProj] : [GateProj!, UpProj!, DownProj];

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
