using System.Diagnostics;
using Microsoft.ML.OnnxRuntime;
using Microsoft.ML.OnnxRuntime.Tensors;

namespace Microsoft.ML.Lora.Tests.Onnx;

/// <summary>One input tensor for <see cref="OnnxRuntimeChecker.Run"/>: element type, dims and values.</summary>
internal sealed class OnnxInput
{
    private OnnxInput(string type, int[] dims, float[]? floats, long[]? longs)
    {
        long count = 1;
        foreach (int d in dims)
        {
            ArgumentOutOfRangeException.ThrowIfNegative(d, nameof(dims));
            count *= d;
        }

        long length = floats?.Length ?? longs!.Length;
        if (count != length)
        {
            throw new ArgumentException($"dims [{string.Join(", ", dims)}] hold {count} values, data has {length}");
        }

        Type = type;
        Dims = dims;
        Floats = floats;
        Longs = longs;
    }

    /// <summary>"float32", "float16" or "int64".</summary>
    public string Type { get; }

    public int[] Dims { get; }

    /// <summary>Values of a float32 or float16 input (float16 inputs are rounded to half on the way).</summary>
    public float[]? Floats { get; }

    /// <summary>Values of an int64 input.</summary>
    public long[]? Longs { get; }

    public static OnnxInput Float32(float[] data, params int[] dims) => new("float32", dims, data, null);

    public static OnnxInput Float16(float[] data, params int[] dims) => new("float16", dims, data, null);

    public static OnnxInput Int64(long[] data, params int[] dims) => new("int64", dims, null, data);
}

/// <summary>One output tensor of a run.</summary>
internal sealed class OnnxRuntimeTensor
{
    public OnnxRuntimeTensor(string type, int[] dims, float[]? floats, long[]? longs)
    {
        Type = type;
        Dims = dims;
        Floats = floats;
        Longs = longs;
    }

    /// <summary>The ONNX Runtime type name: "float32", "float16", "int64", "int32", ...</summary>
    public string Type { get; }

    public int[] Dims { get; }

    /// <summary>float32 values (float16 outputs widened exactly); null for integer outputs.</summary>
    public float[]? Floats { get; }

    /// <summary>int64 / int32 values; null for float outputs.</summary>
    public long[]? Longs { get; }

    public float[] AsFloats() => Floats ?? throw new InvalidOperationException($"output is {Type}, not a float tensor");

    public long[] AsLongs() => Longs ?? throw new InvalidOperationException($"output is {Type}, not an integer tensor");
}

/// <summary>Every output of one run, the session's input and output names and the timings.</summary>
internal sealed class OnnxOutputs
{
    public OnnxOutputs(IReadOnlyDictionary<string, OnnxRuntimeTensor> tensors, double sessionMs, double runMs,
        IReadOnlyList<string> inputNames, IReadOnlyList<string> outputNames, string? onnxRuntimeVersion)
    {
        Tensors = tensors;
        SessionMs = sessionMs;
        RunMs = runMs;
        InputNames = inputNames;
        OutputNames = outputNames;
        OnnxRuntimeVersion = onnxRuntimeVersion;
    }

    public IReadOnlyDictionary<string, OnnxRuntimeTensor> Tensors { get; }

    /// <summary>Milliseconds to create the InferenceSession (model parse and graph optimization).</summary>
    public double SessionMs { get; }

    /// <summary>Milliseconds of session.run.</summary>
    public double RunMs { get; }

    public IReadOnlyList<string> InputNames { get; }

    public IReadOnlyList<string> OutputNames { get; }

    public string? OnnxRuntimeVersion { get; }

    public OnnxRuntimeTensor this[string name] => Tensors.TryGetValue(name, out OnnxRuntimeTensor? t)
        ? t
        : throw new KeyNotFoundException($"no output '{name}'; outputs are [{string.Join(", ", OutputNames)}]");
}

/// <summary>ONNX Runtime refused the model, the inputs or the adapter; the message names which and says why.</summary>
internal sealed class OnnxRuntimeCheckerException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Runs an ONNX model with ONNX Runtime .NET in this process (CPU execution provider, all graph optimizations,
/// 2 intra-op threads), optionally with ONNX Runtime LoRA adapter files (<c>.onnx_adapter</c>) active.
/// </summary>
internal static class OnnxRuntimeChecker
{
    public static OnnxOutputs Run(string modelPath, IReadOnlyDictionary<string, OnnxInput> inputs, params string[] adapterFiles)
    {
        string full = Path.GetFullPath(modelPath);
        if (!File.Exists(full))
        {
            throw new OnnxRuntimeCheckerException($"{full}: model not found");
        }

        var clock = Stopwatch.StartNew();
        using var options = new SessionOptions
        {
            GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
            IntraOpNumThreads = 2,
            InterOpNumThreads = 1,
        };
        InferenceSession session;
        try
        {
            session = new InferenceSession(full, options);
        }
        catch (OnnxRuntimeException e)
        {
            throw new OnnxRuntimeCheckerException($"{full}: cannot load model: {e.Message}", e);
        }

        using (session)
        {
            double sessionMs = clock.Elapsed.TotalMilliseconds;
            var required = session.InputMetadata.Keys.ToList();
            var known = required.Concat(session.OverridableInitializerMetadata.Keys).ToHashSet(StringComparer.Ordinal);
            var missing = required.Where(n => !inputs.ContainsKey(n)).ToList();
            var unknown = inputs.Keys.Where(n => !known.Contains(n)).ToList();
            if (missing.Count > 0 || unknown.Count > 0)
            {
                throw new OnnxRuntimeCheckerException($"{full}: inputs do not match the model: missing [{string.Join(", ", missing)}], unknown [{string.Join(", ", unknown)}]");
            }

            var adapters = new List<OrtLoraAdapter>();
            var values = new Dictionary<string, OrtValue>(StringComparer.Ordinal);
            try
            {
                using var runOptions = new RunOptions();
                foreach (string file in adapterFiles)
                {
                    try
                    {
                        adapters.Add(OrtLoraAdapter.Create(Path.GetFullPath(file), null));
                    }
                    catch (OnnxRuntimeException e)
                    {
                        throw new OnnxRuntimeCheckerException($"{file}: cannot load adapter: {e.Message}", e);
                    }

                    runOptions.AddActiveLoraAdapter(adapters[^1]);
                }

                foreach ((string name, OnnxInput input) in inputs)
                {
                    values[name] = ToOrtValue(input);
                }

                var outputNames = session.OutputMetadata.Keys.ToList();
                clock.Restart();
                IDisposableReadOnlyCollection<OrtValue> results;
                try
                {
                    results = session.Run(runOptions, values, outputNames);
                }
                catch (OnnxRuntimeException e)
                {
                    throw new OnnxRuntimeCheckerException($"{full}: run failed: {e.Message}", e);
                }

                using (results)
                {
                    double runMs = clock.Elapsed.TotalMilliseconds;
                    var tensors = new Dictionary<string, OnnxRuntimeTensor>(StringComparer.Ordinal);
                    for (int i = 0; i < outputNames.Count; i++)
                    {
                        tensors[outputNames[i]] = FromOrtValue(results[i]);
                    }

                    return new OnnxOutputs(tensors, sessionMs, runMs, required, outputNames, OrtEnv.Instance().GetVersionString());
                }
            }
            finally
            {
                foreach (OrtValue v in values.Values)
                {
                    v.Dispose();
                }

                foreach (OrtLoraAdapter a in adapters)
                {
                    a.Dispose();
                }
            }
        }
    }

    internal static OrtValue ToOrtValue(OnnxInput input)
    {
        long[] shape = input.Dims.Select(static d => (long)d).ToArray();
        return input.Type switch
        {
            "float32" => OrtValue.CreateTensorValueFromMemory(input.Floats!, shape),
            "float16" => OrtValue.CreateTensorValueFromMemory(input.Floats!.Select(static f => new Float16(BitConverter.HalfToUInt16Bits((Half)f))).ToArray(), shape),
            _ => OrtValue.CreateTensorValueFromMemory(input.Longs!, shape),
        };
    }

    internal static OnnxRuntimeTensor FromOrtValue(OrtValue value)
    {
        var info = value.GetTensorTypeAndShape();
        int[] dims = info.Shape.Select(static d => checked((int)d)).ToArray();
        return info.ElementDataType switch
        {
            TensorElementType.Float => new OnnxRuntimeTensor("float32", dims, value.GetTensorDataAsSpan<float>().ToArray(), null),
            TensorElementType.Float16 => new OnnxRuntimeTensor("float16", dims, ToFloats(value.GetTensorDataAsSpan<Float16>()), null),
            TensorElementType.Int64 => new OnnxRuntimeTensor("int64", dims, null, value.GetTensorDataAsSpan<long>().ToArray()),
            TensorElementType.Int32 => new OnnxRuntimeTensor("int32", dims, null, value.GetTensorDataAsSpan<int>().ToArray().Select(static v => (long)v).ToArray()),
            var other => new OnnxRuntimeTensor(other.ToString().ToLowerInvariant(), dims, null, null),
        };
    }

    private static float[] ToFloats(ReadOnlySpan<Float16> halves)
    {
        var f = new float[halves.Length];
        for (int i = 0; i < f.Length; i++)
        {
            f[i] = (float)BitConverter.UInt16BitsToHalf(halves[i].value);
        }

        return f;
    }
}
