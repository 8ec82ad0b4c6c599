namespace Microsoft.ML.Lora.Onnx;

/// <summary>One operator call in a graph (<c>NodeProto</c>).</summary>
public sealed record OnnxNode(
    string OpType,
    IReadOnlyList<string> Inputs,
    IReadOnlyList<string> Outputs,
    string Name,
    string Domain,
    IReadOnlyList<OnnxAttribute> Attributes);

/// <summary>A typed graph input, output or intermediate value (<c>ValueInfoProto</c> with a tensor type).</summary>
public sealed record OnnxValueInfo(string Name, OnnxElementType ElementType, IReadOnlyList<OnnxDim> Shape);
