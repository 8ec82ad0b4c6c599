using System.Globalization;
using Google.Protobuf;
using F = Microsoft.ML.Lora.Onnx.OnnxProtoFields;

namespace Microsoft.ML.Lora.Onnx;

/// <summary>Where one initializer's bytes live in the external data file.</summary>
internal readonly record struct ExternalLocation(string File, long Offset, long Length);

/// <summary>
/// Encodes ONNX messages with <see cref="CodedOutputStream"/>. Small messages become byte arrays;
/// initializer payloads are never copied into them (see <see cref="OnnxModelWriter"/>).
/// Repeated scalars are written unpacked, the proto2 default that onnx.proto declares.
/// </summary>
internal static class OnnxProtoEncoder
{
    public static byte[] Encode(Action<CodedOutputStream> write)
    {
        using var buffer = new MemoryStream();
        using (var output = new CodedOutputStream(buffer, leaveOpen: true))
        {
            write(output);
            output.Flush();
        }

        return buffer.ToArray();
    }

    public static void WriteMessage(CodedOutputStream output, int field, byte[] message)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteLength(message.Length);
        output.WriteRawMessage(message);
    }

    /// <summary>Writes already-encoded bytes; <see cref="CodedOutputStream"/> has no public raw-bytes writer.</summary>
    private static void WriteRawMessage(this CodedOutputStream output, byte[] bytes)
    {
        foreach (byte b in bytes)
        {
            output.WriteRawTag(b);
        }
    }

    public static void WriteString(CodedOutputStream output, int field, string value)
    {
        output.WriteTag(field, WireFormat.WireType.LengthDelimited);
        output.WriteString(value);
    }

    public static void WriteInt64(CodedOutputStream output, int field, long value)
    {
        output.WriteTag(field, WireFormat.WireType.Varint);
        output.WriteInt64(value);
    }

    public static byte[] StringEntry(string key, string value) => Encode(o =>
    {
        WriteString(o, F.StringStringEntry.Key, key);
        WriteString(o, F.StringStringEntry.Value, value);
    });

    public static byte[] OperatorSetId(string domain, long version) => Encode(o =>
    {
        WriteString(o, F.OperatorSetId.Domain, domain);
        WriteInt64(o, F.OperatorSetId.Version, version);
    });

    public static byte[] ValueInfo(OnnxValueInfo info) => Encode(o =>
    {
        byte[] shape = Encode(s =>
        {
            foreach (OnnxDim dim in info.Shape)
            {
                byte[] dimension = Encode(d =>
                {
                    if (dim.Symbol is { } symbol)
                    {
                        WriteString(d, F.Dimension.DimParam, symbol);
                    }
                    else
                    {
                        WriteInt64(d, F.Dimension.DimValue, dim.Value!.Value);
                    }
                });
                WriteMessage(s, F.Shape.Dim, dimension);
            }
        });
        byte[] tensorType = Encode(t =>
        {
            WriteInt64(t, F.TensorType.ElemType, (int)info.ElementType);
            WriteMessage(t, F.TensorType.Shape, shape);
        });
        byte[] type = Encode(t => WriteMessage(t, F.Type.TensorType, tensorType));
        WriteString(o, F.ValueInfo.Name, info.Name);
        WriteMessage(o, F.ValueInfo.Type, type);
    });

    /// <summary>Every TensorProto field except <c>raw_data</c>; external tensors also get their location entries.</summary>
    public static byte[] TensorHeader(OnnxTensor tensor, ExternalLocation? external) => Encode(o =>
    {
        foreach (long dim in tensor.Dims)
        {
            WriteInt64(o, F.Tensor.Dims, dim);
        }

        WriteInt64(o, F.Tensor.DataType, (int)tensor.ElementType);
        if (tensor.Name.Length > 0)
        {
            WriteString(o, F.Tensor.Name, tensor.Name);
        }

        if (external is { } location)
        {
            // Keys and decimal-string values as onnx/external_data_helper.py writes them.
            WriteMessage(o, F.Tensor.ExternalData, StringEntry("location", location.File));
            WriteMessage(o, F.Tensor.ExternalData, StringEntry("offset", location.Offset.ToString(CultureInfo.InvariantCulture)));
            WriteMessage(o, F.Tensor.ExternalData, StringEntry("length", location.Length.ToString(CultureInfo.InvariantCulture)));
            WriteInt64(o, F.Tensor.DataLocation, F.Tensor.LocationExternal);
        }
    });

    /// <summary>A complete inline TensorProto (used for TENSOR attributes).</summary>
    public static byte[] InlineTensor(OnnxTensor tensor)
    {
        byte[] header = TensorHeader(tensor, null);
        return Encode(o =>
        {
            o.WriteRawMessage(header);
            o.WriteTag(F.Tensor.RawData, WireFormat.WireType.LengthDelimited);
            o.WriteBytes(UnsafeByteOperations.UnsafeWrap(tensor.RawData));
        });
    }

    public static byte[] Attribute(OnnxAttribute attribute) => Encode(o =>
    {
        WriteString(o, F.Attribute.Name, attribute.Name);
        switch (attribute.Type)
        {
            case OnnxAttributeType.Float:
                o.WriteTag(F.Attribute.F, WireFormat.WireType.Fixed32);
                o.WriteFloat(attribute.FloatValue);
                break;
            case OnnxAttributeType.Int:
                WriteInt64(o, F.Attribute.I, attribute.IntValue);
                break;
            case OnnxAttributeType.String:
                WriteString(o, F.Attribute.S, attribute.StringValue);
                break;
            case OnnxAttributeType.Tensor:
                WriteMessage(o, F.Attribute.T, InlineTensor(attribute.TensorValue!));
                break;
            case OnnxAttributeType.Floats:
                foreach (float value in attribute.FloatsValue)
                {
                    o.WriteTag(F.Attribute.Floats, WireFormat.WireType.Fixed32);
                    o.WriteFloat(value);
                }

                break;
            case OnnxAttributeType.Ints:
                foreach (long value in attribute.IntsValue)
                {
                    WriteInt64(o, F.Attribute.Ints, value);
                }

                break;
            default:
                throw new InvalidOperationException($"attribute '{attribute.Name}': type {attribute.Type} cannot be encoded");
        }

        WriteInt64(o, F.Attribute.Type, (int)attribute.Type);
    });

    public static byte[] Node(OnnxNode node) => Encode(o =>
    {
        foreach (string input in node.Inputs)
        {
            WriteString(o, F.Node.Input, input);
        }

        foreach (string output in node.Outputs)
        {
            WriteString(o, F.Node.Output, output);
        }

        WriteString(o, F.Node.Name, node.Name);
        WriteString(o, F.Node.OpType, node.OpType);
        foreach (OnnxAttribute attribute in node.Attributes)
        {
            WriteMessage(o, F.Node.Attribute, Attribute(attribute));
        }

        if (node.Domain.Length > 0)
        {
            WriteString(o, F.Node.Domain, node.Domain);
        }
    });
}
