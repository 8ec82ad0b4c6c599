namespace Microsoft.ML.Lora.Onnx;

/// <summary>
/// Builds an ONNX graph: typed inputs and outputs, initializers and nodes in topological order.
/// Names are checked as they are added so a mistake is reported where it is made.
/// </summary>
public sealed class OnnxGraph
{
    private readonly List<OnnxValueInfo> _inputs = [];
    private readonly List<OnnxValueInfo> _outputs = [];
    private readonly List<OnnxValueInfo> _valueInfos = [];
    private readonly List<OnnxTensor> _initializers = [];
    private readonly List<OnnxNode> _nodes = [];
    private readonly HashSet<string> _defined = new(StringComparer.Ordinal);

    /// <summary>Creates an empty graph.</summary>
    public OnnxGraph(string name = "main")
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        Name = name;
    }

    /// <summary>Graph name.</summary>
    public string Name { get; }

    /// <summary>Graph inputs in order.</summary>
    public IReadOnlyList<OnnxValueInfo> Inputs => _inputs;

    /// <summary>Graph outputs in order.</summary>
    public IReadOnlyList<OnnxValueInfo> Outputs => _outputs;

    /// <summary>Optional type annotations of intermediate values.</summary>
    public IReadOnlyList<OnnxValueInfo> ValueInfos => _valueInfos;

    /// <summary>Initializers in order.</summary>
    public IReadOnlyList<OnnxTensor> Initializers => _initializers;

    /// <summary>Nodes in topological order.</summary>
    public IReadOnlyList<OnnxNode> Nodes => _nodes;

    /// <summary>Adds a graph input; dims are fixed sizes (long) or symbols (string).</summary>
    public OnnxGraph AddInput(string name, OnnxElementType elementType, params OnnxDim[] dims)
    {
        Define(name, "input");
        _inputs.Add(new OnnxValueInfo(name, elementType, (OnnxDim[])dims.Clone()));
        return this;
    }

    /// <summary>
    /// Adds a graph input with a default: an initializer of the same name that ONNX Runtime uses when the input
    /// is not fed (IR version 4 and later). <paramref name="dims"/> may be wider (symbolic) than the default's.
    /// </summary>
    public OnnxGraph AddInput(OnnxTensor defaultValue, params OnnxDim[] dims)
    {
        ArgumentNullException.ThrowIfNull(defaultValue);
        Define(defaultValue.Name, "input");
        _inputs.Add(new OnnxValueInfo(defaultValue.Name, defaultValue.ElementType, (OnnxDim[])dims.Clone()));
        _initializers.Add(defaultValue);
        return this;
    }

    /// <summary>Adds a graph output; it must be produced by a node, input or initializer by the time the model is saved.</summary>
    public OnnxGraph AddOutput(string name, OnnxElementType elementType, params OnnxDim[] dims)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (_outputs.Exists(o => o.Name == name))
        {
            throw new ArgumentException($"graph output '{name}' is already declared", nameof(name));
        }

        _outputs.Add(new OnnxValueInfo(name, elementType, (OnnxDim[])dims.Clone()));
        return this;
    }

    /// <summary>Annotates the type and shape of an intermediate value.</summary>
    public OnnxGraph AddValueInfo(string name, OnnxElementType elementType, params OnnxDim[] dims)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        _valueInfos.Add(new OnnxValueInfo(name, elementType, (OnnxDim[])dims.Clone()));
        return this;
    }

    /// <summary>Adds an initializer from little-endian bytes (copied).</summary>
    public OnnxGraph AddInitializer(string name, OnnxElementType elementType, long[] dims, ReadOnlySpan<byte> rawLittleEndian) =>
        AddInitializer(OnnxTensor.FromRaw(name, elementType, dims, rawLittleEndian));

    /// <summary>Adds a float initializer.</summary>
    public OnnxGraph AddInitializer(string name, long[] dims, float[] values) => AddInitializer(OnnxTensor.FromFloats(name, dims, values));

    /// <summary>Adds an int64 initializer.</summary>
    public OnnxGraph AddInitializer(string name, long[] dims, long[] values) => AddInitializer(OnnxTensor.FromInt64s(name, dims, values));

    /// <summary>Adds an int32 initializer.</summary>
    public OnnxGraph AddInitializer(string name, long[] dims, int[] values) => AddInitializer(OnnxTensor.FromInt32s(name, dims, values));

    /// <summary>Adds a float16 initializer.</summary>
    public OnnxGraph AddInitializer(string name, long[] dims, Half[] values) => AddInitializer(OnnxTensor.FromHalves(name, dims, values));

    /// <summary>Adds a prepared tensor as an initializer.</summary>
    public OnnxGraph AddInitializer(OnnxTensor tensor)
    {
        ArgumentNullException.ThrowIfNull(tensor);
        Define(tensor.Name, "initializer");
        _initializers.Add(tensor);
        return this;
    }

    /// <summary>
    /// Removes the initializers no node, graph output or graph input reads (ONNX Runtime warns about each one it finds);
    /// returns how many were removed.
    /// </summary>
    public int RemoveUnusedInitializers()
    {
        var used = new HashSet<string>(_nodes.SelectMany(static n => n.Inputs), StringComparer.Ordinal);
        used.UnionWith(_outputs.Select(static o => o.Name));
        used.UnionWith(_inputs.Select(static i => i.Name));
        var unused = _initializers.Where(t => !used.Contains(t.Name)).ToList();
        foreach (var t in unused)
        {
            _initializers.Remove(t);
            _defined.Remove(t.Name);
        }

        return unused.Count;
    }

    /// <summary>
    /// Adds a node. Every non-empty input must already be an input, initializer or earlier node output
    /// (ONNX requires topological order); empty input names mark omitted optional inputs.
    /// </summary>
    public OnnxGraph AddNode(string opType, string[] inputs, string[] outputs, string? name = null, string domain = "", params OnnxAttribute[] attributes)
    {
        ArgumentException.ThrowIfNullOrEmpty(opType);
        ArgumentNullException.ThrowIfNull(inputs);
        ArgumentNullException.ThrowIfNull(outputs);
        ArgumentNullException.ThrowIfNull(domain);
        string nodeName = name ?? $"{opType}_{_nodes.Count}";
        foreach (string input in inputs)
        {
            if (input.Length > 0 && !_defined.Contains(input))
            {
                throw new ArgumentException(
                    $"node '{nodeName}' ({opType}) reads '{input}', which is not yet defined — add the input, initializer or producing node first",
                    nameof(inputs));
            }
        }

        if (outputs.Length == 0)
        {
            throw new ArgumentException($"node '{nodeName}' ({opType}) has no outputs", nameof(outputs));
        }

        var seenAttributes = new HashSet<string>(StringComparer.Ordinal);
        foreach (OnnxAttribute attribute in attributes)
        {
            if (!seenAttributes.Add(attribute.Name))
            {
                throw new ArgumentException($"node '{nodeName}' ({opType}) sets attribute '{attribute.Name}' twice", nameof(attributes));
            }
        }

        foreach (string output in outputs)
        {
            if (output.Length > 0)
            {
                Define(output, $"output of node '{nodeName}'");
            }
        }

        _nodes.Add(new OnnxNode(opType, (string[])inputs.Clone(), (string[])outputs.Clone(), nodeName, domain, (OnnxAttribute[])attributes.Clone()));
        return this;
    }

    /// <summary>Checks that every declared graph output is produced; called before saving.</summary>
    internal void Validate()
    {
        foreach (OnnxValueInfo output in _outputs)
        {
            if (!_defined.Contains(output.Name))
            {
                throw new InvalidOperationException(
                    $"graph '{Name}': output '{output.Name}' is declared but no node, input or initializer produces it");
            }
        }

        if (_outputs.Count == 0)
        {
            throw new InvalidOperationException($"graph '{Name}' has no outputs — call AddOutput");
        }
    }

    private void Define(string name, string what)
    {
        ArgumentException.ThrowIfNullOrEmpty(name);
        if (!_defined.Add(name))
        {
            throw new ArgumentException($"'{name}' ({what}) is already defined in graph '{Name}' — ONNX value names must be unique", nameof(name));
        }
    }
}
