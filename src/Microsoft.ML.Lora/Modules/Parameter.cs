using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Modules;

/// <summary>
/// A named weight. <see cref="Name"/> is the Hugging Face / PEFT key, so weights map one-to-one to
/// checkpoint tensors. Only trainable parameters get a gradient; frozen base weights never do.
/// </summary>
public sealed class Parameter : IDisposable
{
    private bool trainable;

    /// <summary>Creates a frozen parameter that takes ownership of <paramref name="value"/>.</summary>
    public Parameter(string name, Tensor value)
    {
        Name = name;
        Value = value;
    }

    /// <summary>Checkpoint key, e.g. <c>model.layers.0.self_attn.q_proj.weight</c>.</summary>
    public string Name { get; }

    /// <summary>The weight (F32, or BF16 for frozen base weights).</summary>
    public Tensor Value { get; private set; }

    /// <summary>Accumulated gradient (F32, same shape), allocated when the parameter is trainable.</summary>
    public Tensor? Grad { get; private set; }

    /// <summary>Whether Backward accumulates a gradient for this parameter. Only F32 weights can train.</summary>
    public bool Trainable
    {
        get => trainable;
        set
        {
            if (value && Value.DType != DType.F32)
            {
                throw new InvalidOperationException($"parameter '{Name}' is {Value.DType}; only F32 parameters can be trainable (load the model with dtype f32 to train base weights)");
            }

            trainable = value;
            if (value && Grad is null)
            {
                Grad = Value.Backend.Zeros(DType.F32, Value.Shape.ToArray());
            }
            else if (!value)
            {
                Grad?.Dispose();
                Grad = null;
            }
        }
    }

    /// <summary>Moves the value (and gradient) to <paramref name="backend"/>; nothing happens when it is there already.</summary>
    public void MoveTo(Backend backend)
    {
        Value = Transfer(Value, backend);
        if (Grad is not null)
        {
            Grad = Transfer(Grad, backend);
        }
    }

    /// <summary>
    /// <paramref name="tensor"/> on <paramref name="backend"/>: itself when it is there, else a copy, and the
    /// original is disposed (one transfer; NF4 moves packed).
    /// </summary>
    internal static Tensor Transfer(Tensor tensor, Backend backend)
    {
        if (ReferenceEquals(tensor.Backend, backend))
        {
            return tensor;
        }

        using var host = tensor.IsHost ? null : tensor.ToHost();
        var moved = backend.FromHost(host ?? tensor);
        tensor.Dispose();
        return moved;
    }

    /// <summary>Sets the gradient to zero.</summary>
    public void ZeroGrad() => Grad?.Clear();

    /// <summary>Replaces the value (same shape), disposing the old one.</summary>
    public void Replace(Tensor value) => Swap(value).Dispose();

    /// <summary>
    /// Puts <paramref name="value"/> (same shape, any dtype) in place and returns the previous value, which the
    /// caller now owns. A value of another backend is moved to this parameter's (and the original disposed).
    /// </summary>
    public Tensor Swap(Tensor value)
    {
        if (!value.Shape.SequenceEqual(Value.Shape))
        {
            throw new ArgumentException($"parameter '{Name}' has shape {Tensor.Format(Value.Shape)}; cannot swap in {Tensor.Format(value.Shape)}", nameof(value));
        }

        if (trainable && value.DType != DType.F32)
        {
            throw new InvalidOperationException($"parameter '{Name}' is trainable and must stay F32");
        }

        // A value made elsewhere (a loaded adapter's head on the host) moves to where the parameter lives.
        value = Transfer(value, Value.Backend);

        var old = Value;
        Value = value;
        return old;
    }

    /// <inheritdoc/>
    public void Dispose()
    {
        Value.Dispose();
        Grad?.Dispose();
        Grad = null;
    }

    /// <inheritdoc/>
    public override string ToString() => $"{Name} {Value}{(trainable ? " trainable" : string.Empty)}";
}
