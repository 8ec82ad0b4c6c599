using System.Buffers.Binary;
using System.Diagnostics;
using System.Text.Json;

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

    /// <summary>"float32", "float16" or "int64" (the run.mjs type names).</summary>
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

/// <summary>One output tensor read back from run.mjs.</summary>
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

/// <summary>Every output of one run plus run.mjs's timings.</summary>
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

/// <summary>run.mjs failed, or the checker could not run it; the message carries node's stderr.</summary>
internal sealed class OnnxRuntimeCheckerException : Exception
{
    public OnnxRuntimeCheckerException(string message, string stderr = "", Exception? inner = null)
        : base(message, inner)
    {
        Stderr = stderr;
    }

    public string Stderr { get; }
}

/// <summary>
/// Runs an ONNX model with ONNX Runtime (onnxruntime-node, CPU) through <c>node tests/onnx/run.mjs</c>.
/// Needs node and <c>eng/install-onnxruntime.sh</c>; fails (never skips) when they are missing.
/// </summary>
internal static class OnnxRuntimeChecker
{
    public const string InstallHint = "run eng/install-onnxruntime.sh (needs node and npm)";

    public static readonly TimeSpan DefaultTimeout = TimeSpan.FromMinutes(2);

    /// <summary>Absolute path of the repository root (the folder holding Microsoft.ML.Lora.sln).</summary>
    public static string RepoRoot { get; } = FindRepoRoot();

    public static string ScriptPath => Path.Combine(RepoRoot, "tests", "onnx", "run.mjs");

    public static OnnxOutputs Run(string modelPath, IReadOnlyDictionary<string, OnnxInput> inputs) =>
        Run(modelPath, inputs, DefaultTimeout);

    public static OnnxOutputs Run(string modelPath, IReadOnlyDictionary<string, OnnxInput> inputs, TimeSpan timeout)
    {
        EnsureInstalled();
        string dir = Path.Combine(Path.GetTempPath(), "lora-ort-" + Guid.NewGuid().ToString("N"));
        Directory.CreateDirectory(dir);
        try
        {
            string inputsPath = Path.Combine(dir, "inputs.json");
            string outputsPath = Path.Combine(dir, "outputs.json");
            File.WriteAllBytes(inputsPath, WriteInputs(inputs));
            RunNode(Path.GetFullPath(modelPath), inputsPath, outputsPath, timeout);
            if (!File.Exists(outputsPath))
            {
                throw new OnnxRuntimeCheckerException($"run.mjs exited 0 but wrote no {outputsPath}");
            }

            return ParseOutputs(File.ReadAllBytes(outputsPath));
        }
        finally
        {
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
                // a leftover temp folder is harmless
            }
        }
    }

    private static void EnsureInstalled()
    {
        string package = Path.Combine(RepoRoot, ".deps", "onnxruntime", "node_modules", "onnxruntime-node", "package.json");
        if (!File.Exists(package) && string.IsNullOrEmpty(Environment.GetEnvironmentVariable("NODE_PATH")))
        {
            throw new OnnxRuntimeCheckerException($"onnxruntime-node is not installed ({package} missing): {InstallHint}");
        }

        if (!File.Exists(ScriptPath))
        {
            throw new OnnxRuntimeCheckerException($"{ScriptPath} missing");
        }
    }

    private static void RunNode(string modelPath, string inputsPath, string outputsPath, TimeSpan timeout)
    {
        var psi = new ProcessStartInfo("node")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = RepoRoot,
        };
        foreach (string arg in new[] { ScriptPath, modelPath, inputsPath, outputsPath })
        {
            psi.ArgumentList.Add(arg);
        }

        Process process;
        try
        {
            process = Process.Start(psi) ?? throw new OnnxRuntimeCheckerException($"could not start node: {InstallHint}");
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new OnnxRuntimeCheckerException($"could not start node ({e.Message}): {InstallHint}", inner: e);
        }

        using (process)
        {
            Task<string> stdout = process.StandardOutput.ReadToEndAsync();
            Task<string> stderr = process.StandardError.ReadToEndAsync();
            if (!process.WaitForExit(timeout))
            {
                process.Kill(entireProcessTree: true);
                process.WaitForExit();
                throw new OnnxRuntimeCheckerException(
                    $"node tests/onnx/run.mjs {modelPath} timed out after {timeout.TotalSeconds:0} s; stderr: {stderr.Result.Trim()}",
                    stderr.Result);
            }

            process.WaitForExit();
            string err = stderr.Result.Trim();
            _ = stdout.Result;
            if (process.ExitCode != 0)
            {
                string hint = err.Contains("onnxruntime-node", StringComparison.Ordinal) ? $" ({InstallHint})" : "";
                throw new OnnxRuntimeCheckerException(
                    $"node tests/onnx/run.mjs {modelPath} exited {process.ExitCode}: {(err.Length > 0 ? err : "(no stderr)")}{hint}",
                    err);
            }
        }
    }

    /// <summary>
    /// {name: {type, dims, base64}} for float32/float16 (little-endian bytes, exact) and
    /// {name: {type, dims, data}} for int64 (numbers; decimal strings past 2^53).
    /// </summary>
    internal static byte[] WriteInputs(IReadOnlyDictionary<string, OnnxInput> inputs)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            foreach ((string name, OnnxInput input) in inputs)
            {
                w.WriteStartObject(name);
                w.WriteString("type", input.Type);
                w.WriteStartArray("dims");
                foreach (int d in input.Dims)
                {
                    w.WriteNumberValue(d);
                }

                w.WriteEndArray();
                switch (input.Type)
                {
                    case "float32":
                    {
                        float[] f = input.Floats!;
                        byte[] bytes = new byte[f.Length * 4];
                        for (int i = 0; i < f.Length; i++)
                        {
                            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), f[i]);
                        }

                        w.WriteBase64String("base64", bytes);
                        break;
                    }

                    case "float16":
                    {
                        float[] f = input.Floats!;
                        byte[] bytes = new byte[f.Length * 2];
                        for (int i = 0; i < f.Length; i++)
                        {
                            BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(i * 2), (Half)f[i]);
                        }

                        w.WriteBase64String("base64", bytes);
                        break;
                    }

                    default:
                        w.WriteStartArray("data");
                        foreach (long v in input.Longs!)
                        {
                            if (Math.Abs((double)v) < 9007199254740991d)
                            {
                                w.WriteNumberValue(v);
                            }
                            else
                            {
                                w.WriteStringValue(v.ToString(System.Globalization.CultureInfo.InvariantCulture));
                            }
                        }

                        w.WriteEndArray();
                        break;
                }

                w.WriteEndObject();
            }

            w.WriteEndObject();
        }

        return stream.ToArray();
    }

    internal static OnnxOutputs ParseOutputs(byte[] json)
    {
        using JsonDocument doc = JsonDocument.Parse(json);
        var tensors = new Dictionary<string, OnnxRuntimeTensor>(StringComparer.Ordinal);
        double sessionMs = double.NaN, runMs = double.NaN;
        var inputNames = new List<string>();
        var outputNames = new List<string>();
        string? version = null;
        foreach (JsonProperty p in doc.RootElement.EnumerateObject())
        {
            if (p.Name == "_meta")
            {
                sessionMs = p.Value.GetProperty("session_ms").GetDouble();
                runMs = p.Value.GetProperty("run_ms").GetDouble();
                inputNames.AddRange(p.Value.GetProperty("input_names").EnumerateArray().Select(e => e.GetString()!));
                outputNames.AddRange(p.Value.GetProperty("output_names").EnumerateArray().Select(e => e.GetString()!));
                if (p.Value.TryGetProperty("onnxruntime", out JsonElement v) && v.ValueKind == JsonValueKind.String)
                {
                    version = v.GetString();
                }

                continue;
            }

            tensors[p.Name] = ParseTensor(p.Name, p.Value);
        }

        if (double.IsNaN(sessionMs))
        {
            throw new OnnxRuntimeCheckerException("outputs JSON has no _meta");
        }

        return new OnnxOutputs(tensors, sessionMs, runMs, inputNames, outputNames, version);
    }

    private static OnnxRuntimeTensor ParseTensor(string name, JsonElement e)
    {
        string type = e.GetProperty("type").GetString()!;
        int[] dims = e.GetProperty("dims").EnumerateArray().Select(d => d.GetInt32()).ToArray();
        long count = dims.Aggregate(1L, (a, b) => a * b);
        switch (type)
        {
            case "float32":
            {
                byte[] bytes = e.GetProperty("base64").GetBytesFromBase64();
                CheckLength(name, bytes.Length, count * 4);
                var f = new float[count];
                for (int i = 0; i < f.Length; i++)
                {
                    f[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes.AsSpan(i * 4));
                }

                return new OnnxRuntimeTensor(type, dims, f, null);
            }

            case "float16":
            {
                byte[] bytes = e.GetProperty("base64").GetBytesFromBase64();
                CheckLength(name, bytes.Length, count * 2);
                var f = new float[count];
                for (int i = 0; i < f.Length; i++)
                {
                    f[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes.AsSpan(i * 2));
                }

                return new OnnxRuntimeTensor(type, dims, f, null);
            }

            case "int64":
            case "int32":
            {
                long[] l = e.GetProperty("data").EnumerateArray().Select(v => v.ValueKind == JsonValueKind.String
                    ? long.Parse(v.GetString()!, System.Globalization.CultureInfo.InvariantCulture)
                    : v.GetInt64()).ToArray();
                CheckLength(name, l.Length, count);
                return new OnnxRuntimeTensor(type, dims, null, l);
            }

            default:
                return new OnnxRuntimeTensor(type, dims, null, null);
        }
    }

    private static void CheckLength(string name, long got, long want)
    {
        if (got != want)
        {
            throw new OnnxRuntimeCheckerException($"output '{name}': {got} values/bytes, dims need {want}");
        }
    }

    private static string FindRepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "Microsoft.ML.Lora.sln")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"Microsoft.ML.Lora.sln not found above {AppContext.BaseDirectory}");
    }
}
