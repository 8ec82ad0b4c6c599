using Microsoft.ML.Lora.Tensors;
using TorchSharp;
using static TorchSharp.torch;
using LoraTensor = Microsoft.ML.Lora.Tensors.Tensor;
using TorchTensor = TorchSharp.torch.Tensor;

namespace Microsoft.ML.Lora.TorchSharp;

/// <summary>
/// The libtorch backend: the same modules on libtorch through TorchSharp, on the CPU or a CUDA device.
/// Frozen weights keep their dtype on the device (F32, BF16, or NF4 packed as 4-bit codes plus absmax,
/// dequantized just before each product); LoRA parameters and optimizer state stay F32 (master
/// weights); with <see cref="TorchBackendOptions.Bf16Compute"/> the matrix products run in BF16 as
/// autocast would. Attention is libtorch's <c>scaled_dot_product_attention</c> (fused kernels on CUDA);
/// its backward is one local autograd call around attention alone. Every other backward is explicit.
/// <para>Host↔device transfers are counted (<see cref="HostToDeviceCopies"/>, <see cref="DeviceToHostCopies"/>):
/// in a training step only the batch goes in (ids, targets, positions: each array once) and the loss
/// and the gradient norm come out.</para>
/// </summary>
public sealed class TorchBackend : Backend
{
    private readonly UploadCache uploads;
    // Keyed weakly: a model that outgrows its table makes a new one, and the old table's device copy goes with it.
    private readonly System.Runtime.CompilerServices.ConditionalWeakTable<RopeTable, Tuple<TorchTensor, TorchTensor>> ropeTables = new();
    private TorchTensor? nf4Table;
    private TorchTensor? nibble;
    private TorchTensor? four;
    private long hostToDevice;
    private long deviceToHost;

    private TorchBackend(torch.Device device, string deviceName, TorchBackendOptions options)
    {
        TorchDevice = device;
        Device = deviceName;
        Options = options;
        uploads = new UploadCache(this);
    }

    /// <inheritdoc/>
    public override string Name => "torch";

    /// <inheritdoc/>
    public override string Device { get; }

    /// <inheritdoc/>
    public override bool IsHost => false;

    /// <inheritdoc/>
    /// <remarks>libtorch's intra-op thread pool (<c>torch.set_num_threads</c>), which is process-wide in libtorch itself.</remarks>
    public override int Threads
    {
        get => torch.get_num_threads();
        set
        {
            if (value is < 1 or > MaxThreads)
            {
                throw new ArgumentOutOfRangeException(nameof(Threads), value, $"threads must be 1 … {MaxThreads}");
            }

            torch.set_num_threads(value);
        }
    }

    /// <summary>The libtorch device.</summary>
    public torch.Device TorchDevice { get; }

    /// <summary>The options this backend was made with.</summary>
    public TorchBackendOptions Options { get; }

    /// <summary>Host-to-device copies so far (tensors and index arrays).</summary>
    public long HostToDeviceCopies => Interlocked.Read(ref hostToDevice);

    /// <summary>Device-to-host copies so far (tensors and scalars).</summary>
    public long DeviceToHostCopies => Interlocked.Read(ref deviceToHost);

    /// <summary>
    /// A backend on <paramref name="device"/> (<c>cpu</c>, <c>cuda</c> or <c>cuda:N</c>). Throws
    /// <see cref="TorchBackendUnavailableException"/> naming the package to add when libtorch's native
    /// library cannot be loaded, or the devices seen when the CUDA device is not there.
    /// </summary>
    public static TorchBackend Create(string device = "cpu", TorchBackendOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(device);
        options ??= new TorchBackendOptions();
        var (type, index) = TorchDevices.Parse(device);
        TorchDevices.EnsureLoaded(DeviceType.CPU);
        if (type == DeviceType.CUDA)
        {
            // Counted with the CPU library alone, so a CPU-only bundle reports 0 devices rather than a load failure.
            int count = TorchDevices.CudaDeviceCount();
            if (count == 0)
            {
                throw new TorchBackendUnavailableException(
                    $"--device {device}: no CUDA device is visible to libtorch (torch.cuda.is_available() is false, 0 devices seen). Check the NVIDIA driver and CUDA_VISIBLE_DEVICES, and that the app references TorchSharp's CUDA native package (TorchSharp-cuda-linux or TorchSharp-cuda-windows) rather than TorchSharp-cpu; or use --device cpu");
            }

            if (index >= count)
            {
                throw new TorchBackendUnavailableException($"--device {device}: libtorch sees {count} CUDA device(s), cuda:0 … cuda:{count - 1}");
            }

            TorchDevices.EnsureLoaded(DeviceType.CUDA);
        }

        string name = type == DeviceType.CUDA ? $"cuda:{Math.Max(index, 0)}" : "cpu";
        return new TorchBackend(new torch.Device(type, type == DeviceType.CUDA ? Math.Max(index, 0) : -1), name, options);
    }

    // ---- memory -------------------------------------------------------------------------------

    /// <inheritdoc/>
    public override LoraTensor Empty(DType dtype, params int[] shape) =>
        Wrap(torch.empty(Dims(shape), ScalarOf(dtype), TorchDevice), dtype, shape);

    /// <inheritdoc/>
    public override void Clear(LoraTensor t) => T(t).zero_();

    /// <inheritdoc/>
    public override LoraTensor FromHost(LoraTensor host)
    {
        if (host.DType == DType.NF4)
        {
            Interlocked.Increment(ref hostToDevice);
            return LoraTensor.OnDevice(this, DType.NF4, host.Shape.ToArray(), Nf4Storage.FromHost(host, TorchDevice), host.Nf4Layout);
        }

        return Wrap(Upload(host), host.DType, host.Shape.ToArray());
    }

    /// <inheritdoc/>
    public override LoraTensor ToHost(LoraTensor t)
    {
        Interlocked.Increment(ref deviceToHost);
        if (t.DType == DType.NF4)
        {
            return Nf4(t).ToHost(t);
        }

        var host = LoraTensor.Empty(t.DType, t.Shape.ToArray());
        using var cpu = T(t).cpu();
        cpu.bytes.CopyTo(host.AsBytes());
        return host;
    }

    /// <inheritdoc/>
    public override void CopyFromHost(LoraTensor host, LoraTensor destination)
    {
        if (host.DType != destination.DType || host.ByteLength != destination.ByteLength || host.DType == DType.NF4)
        {
            throw new ArgumentException($"cannot copy {host} into {destination}: dtype and size must match (F32 or BF16)");
        }

        using var value = Upload(host);
        T(destination).copy_(value.view(T(destination).shape));
    }

    /// <inheritdoc/>
    public override LoraTensor Convert(LoraTensor t, DType dtype)
    {
        if (dtype == DType.NF4)
        {
            if (t.DType != DType.NF4)
            {
                throw new ArgumentException($"{t}.To(NF4): quantizing needs a choice of state; quantize on the host with Nf4.Quantize(tensor, doubleQuant), then move it");
            }

            return LoraTensor.OnDevice(this, DType.NF4, t.Shape.ToArray(), Nf4(t).Clone(), t.Nf4Layout);
        }

        var value = t.DType == DType.NF4 ? Dequantize(t, ScalarOf(dtype)) : T(t).to(ScalarOf(dtype), copy: true);
        return Wrap(value, dtype, t.Shape.ToArray());
    }

    /// <inheritdoc/>
    public override LoraTensor View(LoraTensor t, int[] shape) =>
        t.DType == DType.NF4
            ? LoraTensor.OnDevice(this, DType.NF4, shape, Nf4(t).Alias(), t.Nf4Layout)
            : Wrap(T(t).view(Dims(shape)), t.DType, shape);

    /// <inheritdoc/>
    public override void Copy(LoraTensor source, long sourceOffset, LoraTensor destination, long destinationOffset, long count)
    {
        if (sourceOffset < 0 || destinationOffset < 0 || count < 0 || sourceOffset + count > source.Length || destinationOffset + count > destination.Length)
        {
            throw new ArgumentOutOfRangeException(nameof(count), $"Copy: [{sourceOffset}, +{count}) of {source} into [{destinationOffset}, +{count}) of {destination} is out of range");
        }

        using var scope = torch.NewDisposeScope();
        T(destination).view(-1).narrow(0, destinationOffset, count).copy_(T(source).view(-1).narrow(0, sourceOffset, count));
    }

    /// <inheritdoc/>
    public override void CopyColumns(LoraTensor source, int sourceColumn, LoraTensor destination, int destinationColumn, int width)
    {
        CheckColumns(source, sourceColumn, destination, destinationColumn, width);
        using var scope = torch.NewDisposeScope();
        T(destination).view(destination.Dim(0), destination.Dim(1)).narrow(1, destinationColumn, width)
            .copy_(T(source).view(source.Dim(0), source.Dim(1)).narrow(1, sourceColumn, width));
    }

    // ---- dense algebra ------------------------------------------------------------------------

    /// <inheritdoc/>
    public override void MatMul(LoraTensor a, bool transA, LoraTensor b, bool transB, LoraTensor c, bool accumulate)
    {
        using var scope = torch.NewDisposeScope();
        var compute = Options.Bf16Compute ? ScalarType.BFloat16 : ScalarType.Float32;
        var left = T(a).to(compute);
        var right = b.DType == DType.NF4 ? Dequantize(b, compute) : T(b).to(compute);
        if (transA)
        {
            left = left.t();
        }

        if (transB)
        {
            right = right.t();
        }

        var target = T(c);
        if (compute == ScalarType.Float32)
        {
            // beta = 0 ignores c's old contents entirely (even NaN), as BLAS does.
            target.addmm_(left, right, beta: accumulate ? 1 : 0, alpha: 1);
            return;
        }

        var product = left.mm(right);
        if (accumulate)
        {
            target.add_(product);
        }
        else
        {
            target.copy_(product);
        }
    }

    /// <inheritdoc/>
    public override void Add(LoraTensor a, LoraTensor b, LoraTensor output)
    {
        if (ReferenceEquals(output, a))
        {
            T(a).add_(T(b));
        }
        else if (ReferenceEquals(output, b))
        {
            T(b).add_(T(a));
        }
        else
        {
            using var sum = T(a).add(T(b));
            T(output).copy_(sum);
        }
    }

    /// <inheritdoc/>
    public override void Scale(LoraTensor x, float s) => T(x).mul_(s);

    /// <inheritdoc/>
    public override void ScaleRows(LoraTensor x, float[] scales)
    {
        if (scales.Length == 0 || x.Length % scales.Length != 0)
        {
            throw new ArgumentException($"{scales.Length} row scales do not divide a tensor of {x.Length} elements into rows", nameof(scales));
        }

        using var scope = torch.NewDisposeScope();
        var factors = torch.tensor(scales, device: T(x).device).unsqueeze(1);
        T(x).view(scales.Length, -1).mul_(factors);
    }

    /// <inheritdoc/>
    public override void AddRowVector(LoraTensor y, LoraTensor bias)
    {
        using var rows = T(y).view(-1, bias.Length);
        rows.add_(T(bias));
    }

    /// <inheritdoc/>
    public override void AccumulateRowSum(LoraTensor dy, LoraTensor sum)
    {
        using var scope = torch.NewDisposeScope();
        T(sum).add_(T(dy).view(-1, sum.Length).sum(dim: 0L));
    }

    /// <inheritdoc/>
    public override double SumOfSquares(IReadOnlyList<LoraTensor> tensors)
    {
        using var scope = torch.NewDisposeScope();
        TorchTensor total = torch.zeros(1, ScalarType.Float64, TorchDevice);
        foreach (var x in tensors)
        {
            total = total.add(T(x).to(ScalarType.Float64).square().sum());
        }

        return Scalar(total);
    }

    /// <inheritdoc/>
    public override double Sum(LoraTensor x)
    {
        using var scope = torch.NewDisposeScope();
        return Scalar(T(x).to(ScalarType.Float64).sum());
    }

    // ---- layers -------------------------------------------------------------------------------

    /// <inheritdoc/>
    public override void RmsNormForward(LoraTensor x, LoraTensor weight, LoraTensor y, LoraTensor rstd, float eps, float weightOffset = 0)
    {
        using var scope = torch.NewDisposeScope();
        var rows = T(x).view(-1, weight.Length);
        var r = rows.square().mean([-1L], keepdim: true).add(eps).rsqrt();
        T(rstd).view(-1, 1).copy_(r);
        T(y).view(-1, weight.Length).copy_(rows.mul(r).mul(Effective(weight, weightOffset)));
    }

    // weight + offset (Gemma's (1 + w)), or the weight itself.
    private static TorchTensor Effective(LoraTensor weight, float offset) => offset == 0 ? T(weight) : T(weight).add(offset);

    /// <inheritdoc/>
    public override void RmsNormBackward(LoraTensor dy, LoraTensor x, LoraTensor weight, LoraTensor rstd, LoraTensor dx, LoraTensor? dweight, float weightOffset = 0)
    {
        // With x̂ = x·rstd and g = dy·w: dx = rstd·(g − x̂·mean(g·x̂)); dw += Σₙ dy·x̂.
        using var scope = torch.NewDisposeScope();
        int c = (int)weight.Length;
        var r = T(rstd).view(-1, 1);
        var normed = T(x).view(-1, c).mul(r);
        var g = T(dy).view(-1, c).mul(Effective(weight, weightOffset));
        var dot = g.mul(normed).mean([-1L], keepdim: true);
        T(dx).view(-1, c).copy_(g.sub(normed.mul(dot)).mul(r));
        if (dweight is not null)
        {
            T(dweight).add_(T(dy).view(-1, c).mul(normed).sum(dim: 0L));
        }
    }

    /// <inheritdoc/>
    public override void RopeForward(LoraTensor x, RopeTable table, int b, int t, int nh, int[]? positions) => Rotate(x, table, b, t, nh, positions, 1f);

    /// <inheritdoc/>
    public override void RopeBackward(LoraTensor dx, RopeTable table, int b, int t, int nh, int[]? positions) => Rotate(dx, table, b, t, nh, positions, -1f);

    /// <inheritdoc/>
    public override void AttentionForward(LoraTensor q, LoraTensor k, LoraTensor v, LoraTensor o, LoraTensor lse, int b, int t, int nh, int nkv, int[]? positions, AttentionSpec spec = default)
    {
        using var scope = torch.NewDisposeScope();
        int hs = (int)(q.Length / ((long)b * t * nh));
        var (qh, kh, vh) = (Heads(q, b, t, nh, hs), Heads(k, b, t, nkv, hs), Heads(v, b, t, nkv, hs));
        var output = Attend(qh, kh, vh, nh / nkv, Mask(b, t, positions, spec.Window), spec, hs);
        T(o).view(b, t, nh, hs).copy_(output.transpose(1, 2));
    }

    /// <inheritdoc/>
    public override void AttentionBackward(LoraTensor dout, LoraTensor q, LoraTensor k, LoraTensor v, LoraTensor o, LoraTensor lse, LoraTensor dq, LoraTensor dk, LoraTensor dv, int b, int t, int nh, int nkv, int[]? positions, AttentionSpec spec = default)
    {
        // One local autograd call around attention alone: the fused kernel's own backward.
        using var scope = torch.NewDisposeScope();
        int hs = (int)(q.Length / ((long)b * t * nh));
        using var grad = torch.enable_grad();
        var qh = Heads(q, b, t, nh, hs).detach().requires_grad_(true);
        var kh = Heads(k, b, t, nkv, hs).detach().requires_grad_(true);
        var vh = Heads(v, b, t, nkv, hs).detach().requires_grad_(true);
        var output = Attend(qh, kh, vh, nh / nkv, Mask(b, t, positions, spec.Window), spec, hs);
        var upstream = Heads(dout, b, t, nh, hs);
        var grads = torch.autograd.grad([output], [qh, kh, vh], [upstream]);
        T(dq).view(b, t, nh, hs).copy_(grads[0].transpose(1, 2));
        T(dk).view(b, t, nkv, hs).copy_(grads[1].transpose(1, 2));
        T(dv).view(b, t, nkv, hs).copy_(grads[2].transpose(1, 2));
    }

    /// <inheritdoc/>
    public override void AttentionDecode(LoraTensor q, LoraTensor kCache, LoraTensor vCache, LoraTensor o, int b, int tn, int past, int nh, int nkv, AttentionSpec spec = default)
    {
        using var scope = torch.NewDisposeScope();
        int hs = kCache.Dim(3), length = past + tn;
        var qh = T(q).view(b, tn, nh, hs).transpose(1, 2);
        var kh = T(kCache).narrow(1, 0, length).transpose(1, 2);
        var vh = T(vCache).narrow(1, 0, length).transpose(1, 2);

        // New query i sits at position past + i and sees keys 0 … past + i (the last window of them).
        var rows = torch.arange(past, length, ScalarType.Int64, TorchDevice).view(tn, 1);
        var cols = torch.arange(0, length, ScalarType.Int64, TorchDevice).view(1, length);
        var visible = cols.le(rows);
        if (spec.Window > 0)
        {
            visible = visible.logical_and(cols.gt(rows.sub(spec.Window)));
        }

        var output = Attend(qh, kh, vh, nh / nkv, visible, spec, hs);
        T(o).view(b, tn, nh, hs).copy_(output.transpose(1, 2));
    }

    /// <inheritdoc/>
    public override void GeGluForward(LoraTensor gate, LoraTensor up, LoraTensor h)
    {
        using var scope = torch.NewDisposeScope();
        T(h).copy_(GeluTanh(T(gate)).mul(T(up)));
    }

    /// <inheritdoc/>
    public override void GeGluBackward(LoraTensor dh, LoraTensor gate, LoraTensor up, LoraTensor dgate, LoraTensor dup)
    {
        // gelu_tanh'(g) = ½(1 + t) + ½·g·(1 − t²)·√(2/π)·(1 + 3·0.044715·g²), t = tanh(√(2/π)(g + 0.044715·g³)).
        using var scope = torch.NewDisposeScope();
        var g = T(gate);
        var t = TanhArgument(g).tanh();
        var slope = g.square().mul(3 * 0.044715).add(1).mul(Math.Sqrt(2 / Math.PI)).mul(g).mul(t.square().neg().add(1)).mul(0.5).add(t.add(1).mul(0.5));
        var d = T(dh);
        var gelu = g.mul(t.add(1)).mul(0.5);
        var dg = d.mul(T(up)).mul(slope);
        T(dup).copy_(d.mul(gelu));
        T(dgate).copy_(dg);
    }

    /// <inheritdoc/>
    public override void SoftcapForward(LoraTensor x, float cap)
    {
        using var scope = torch.NewDisposeScope();
        var t = T(x);
        t.copy_(t.div(cap).tanh().mul(cap));
    }

    /// <inheritdoc/>
    public override void SoftcapBackward(LoraTensor dy, LoraTensor y, float cap)
    {
        using var scope = torch.NewDisposeScope();
        T(dy).mul_(T(y).div(cap).square().neg().add(1));
    }

    private static TorchTensor GeluTanh(TorchTensor g) => g.mul(TanhArgument(g).tanh().add(1)).mul(0.5);

    private static TorchTensor TanhArgument(TorchTensor g) => g.pow(3).mul(0.044715).add(g).mul(Math.Sqrt(2 / Math.PI));

    /// <inheritdoc/>
    public override void SwiGluForward(LoraTensor gate, LoraTensor up, LoraTensor h)
    {
        using var scope = torch.NewDisposeScope();
        T(h).copy_(torch.nn.functional.silu(T(gate)).mul(T(up)));
    }

    /// <inheritdoc/>
    public override void SwiGluBackward(LoraTensor dh, LoraTensor gate, LoraTensor up, LoraTensor dgate, LoraTensor dup)
    {
        // silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
        using var scope = torch.NewDisposeScope();
        var g = T(gate);
        var sig = g.sigmoid();
        var silu = g.mul(sig);
        var derivative = sig.mul(g.mul(sig.neg().add(1)).add(1));
        T(dup).copy_(T(dh).mul(silu));
        T(dgate).copy_(T(dh).mul(T(up)).mul(derivative));
    }

    /// <inheritdoc/>
    public override void EmbeddingGather(int[] ids, LoraTensor table, LoraTensor output)
    {
        using var scope = torch.NewDisposeScope();
        T(output).view(ids.Length, -1).copy_(T(table).index_select(0, uploads.Get(ids)));
    }

    /// <inheritdoc/>
    public override void EmbeddingScatterAdd(int[] ids, LoraTensor dout, LoraTensor dtable)
    {
        using var scope = torch.NewDisposeScope();
        T(dtable).index_add_(0, uploads.Get(ids), T(dout).view(ids.Length, -1), 1);
    }

    /// <inheritdoc/>
    public override void CrossEntropy(LoraTensor logits, int[] targets, LoraTensor losses, LoraTensor? dlogits, float gradScale)
    {
        using var scope = torch.NewDisposeScope();
        var z = T(logits);
        var target = uploads.Get(targets);
        var counted = target.ne(Tensors.CrossEntropy.IgnoreIndex);
        var safe = torch.where(counted, target, torch.zeros_like(target));
        var lse = z.logsumexp(-1, keepdim: true);
        var picked = z.gather(1, safe.view(-1, 1));
        T(losses).copy_(lse.sub(picked).view(-1).mul(counted));
        if (dlogits is not null)
        {
            // (softmax − onehot)·scale on counted rows, 0 on ignored ones.
            var probabilities = z.sub(lse).exp();
            probabilities.scatter_add_(1, safe.view(-1, 1), counted.to(ScalarType.Float32).neg().view(-1, 1));
            T(dlogits).copy_(probabilities.mul(counted.to(ScalarType.Float32).mul(gradScale).view(-1, 1)));
        }
    }

    // ---- adapters and optimizer ---------------------------------------------------------------

    /// <inheritdoc/>
    public override void DropoutForward(LoraTensor x, LoraTensor output, float p, ulong seed)
    {
        using var scope = torch.NewDisposeScope();
        T(output).copy_(T(x).mul(KeepMask(x, p, seed)));
    }

    /// <inheritdoc/>
    public override void AccumulateMasked(LoraTensor source, LoraTensor destination, float p, ulong seed)
    {
        using var scope = torch.NewDisposeScope();
        T(destination).add_(T(source).mul(KeepMask(source, p, seed)));
    }

    /// <inheritdoc/>
    public override void AdamWUpdate(LoraTensor p, LoraTensor g, LoraTensor m, LoraTensor v, in AdamWCoefficients c)
    {
        using var scope = torch.NewDisposeScope();
        var (pt, gt, mt, vt) = (T(p), T(g), T(m), T(v));
        mt.mul_(c.Beta1).add_(gt, alpha: c.OneMinusBeta1);
        vt.mul_(c.Beta2).addcmul_(gt, gt, value: c.OneMinusBeta2);
        var denom = vt.sqrt().mul_(c.InvSqrtBiasCorrection2).add_(c.Epsilon);
        pt.mul_(c.Decay).addcdiv_(mt, denom, value: -c.StepSize);
    }

    // ---- helpers ------------------------------------------------------------------------------

    internal static TorchTensor T(LoraTensor t) => t.Storage is TorchStorage s
        ? s.Value
        : throw new ArgumentException($"{t} is not a dense tensor of a torch backend");

    private static Nf4Storage Nf4(LoraTensor t) => t.Storage as Nf4Storage
        ?? throw new ArgumentException($"{t} is not an NF4 tensor of a torch backend");

    internal TorchTensor UploadIndices(int[] values)
    {
        Interlocked.Increment(ref hostToDevice);
        var wide = new long[values.Length];
        for (int i = 0; i < wide.Length; i++)
        {
            wide[i] = values[i];
        }

        using var cpu = torch.tensor(wide);
        return cpu.to(TorchDevice, copy: true);
    }

    private static long[] Dims(ReadOnlySpan<int> shape)
    {
        var dims = new long[shape.Length];
        for (int i = 0; i < dims.Length; i++)
        {
            dims[i] = shape[i];
        }

        return dims;
    }

    private static ScalarType ScalarOf(DType dtype) => dtype switch
    {
        DType.F32 => ScalarType.Float32,
        DType.BF16 => ScalarType.BFloat16,
        _ => throw new ArgumentException($"the torch backend makes F32 or BF16 tensors; NF4 is quantized on the host (Nf4.Quantize) and moved packed", nameof(dtype)),
    };

    private LoraTensor Wrap(TorchTensor value, DType dtype, int[] shape) => LoraTensor.OnDevice(this, dtype, shape, new TorchStorage(value));

    private TorchTensor Upload(LoraTensor host)
    {
        if (!host.IsHost)
        {
            throw new ArgumentException($"{host} is not a host tensor");
        }

        using var cpu = torch.empty(Dims(host.Shape), ScalarOf(host.DType));
        cpu.bytes = host.AsBytes();
        Interlocked.Increment(ref hostToDevice);
        return cpu.to(TorchDevice, copy: true);
    }

    private double Scalar(TorchTensor value)
    {
        Interlocked.Increment(ref deviceToHost);
        return value.cpu().item<double>();
    }

    // x (B,T,H,HS) stored as (N, H·HS) -> (B,H,T,HS) view.
    private static TorchTensor Heads(LoraTensor x, int b, int t, int heads, int hs) => T(x).view(b, t, heads, hs).transpose(1, 2);

    // Plain attention goes to scaled_dot_product_attention (fused kernels on CUDA); another scale or soft-capped
    // logits (Gemma) are written out — scores, cap, mask, softmax — and differentiated by autograd.
    private static TorchTensor Attend(TorchTensor q, TorchTensor k, TorchTensor v, int group, TorchTensor? allowed, AttentionSpec spec, int hs)
    {
        if (spec.Scale == 0 && spec.Softcap == 0)
        {
            return Sdpa(q, k, v, group, allowed);
        }

        if (group > 1)
        {
            k = k.repeat_interleave(group, dim: 1);
            v = v.repeat_interleave(group, dim: 1);
        }

        var scores = q.matmul(k.transpose(-2, -1)).mul(spec.ScaleFor(hs));
        if (spec.Softcap > 0)
        {
            scores = scores.div(spec.Softcap).tanh().mul(spec.Softcap);
        }

        allowed ??= torch.ones(q.shape[2], k.shape[2], ScalarType.Bool, q.device).tril();
        scores = scores.masked_fill(allowed.logical_not(), float.NegativeInfinity);
        return scores.softmax(-1).matmul(v);
    }

    private static TorchTensor Sdpa(TorchTensor q, TorchTensor k, TorchTensor v, int group, TorchTensor? allowed)
    {
        if (group > 1)
        {
            k = k.repeat_interleave(group, dim: 1);
            v = v.repeat_interleave(group, dim: 1);
        }

        return allowed is null
            ? torch.nn.functional.scaled_dot_product_attention(q, k, v, is_casual: true)
            : torch.nn.functional.scaled_dot_product_attention(q, k, v, attn_mask: allowed);
    }

    // Null (plain causal) without packing or a window; else (B or 1, 1, T, T) true where the query may look.
    private TorchTensor? Mask(int b, int t, int[]? positions, int window)
    {
        if (positions is null && window <= 0)
        {
            return null;
        }

        var i = torch.arange(0, t, ScalarType.Int64, TorchDevice).view(1, t, 1);
        var j = torch.arange(0, t, ScalarType.Int64, TorchDevice).view(1, 1, t);
        var visible = j.le(i);
        if (positions is not null)
        {
            visible = visible.logical_and(j.ge(i.sub(uploads.Get(positions).view(b, t, 1))));
        }

        if (window > 0)
        {
            visible = visible.logical_and(j.gt(i.sub(window)));
        }

        return visible.unsqueeze(1);
    }

    private void Rotate(LoraTensor x, RopeTable table, int b, int t, int nh, int[]? positions, float sign)
    {
        using var scope = torch.NewDisposeScope();
        int hs = table.HeadDim, half = hs / 2;
        var (cosTable, sinTable) = RopeOnDevice(table);
        TorchTensor index = positions is null
            ? torch.arange(0, t, ScalarType.Int64, TorchDevice).repeat(b)
            : uploads.Get(positions);
        var cos = cosTable.index_select(0, index).view(-1, 1, half);
        var sin = sinTable.index_select(0, index).view(-1, 1, half).mul(sign);
        var heads = T(x).view((long)b * t, nh, hs);
        var x1 = heads.narrow(2, 0, half);
        var x2 = heads.narrow(2, half, half);
        var first = x1.mul(cos).sub(x2.mul(sin));
        var second = x2.mul(cos).add(x1.mul(sin));
        x1.copy_(first);
        x2.copy_(second);
    }

    private (TorchTensor Cos, TorchTensor Sin) RopeOnDevice(RopeTable table)
    {
        var pair = ropeTables.GetValue(table, t =>
        {
            int half = t.HeadDim / 2;
            var cos = new float[(long)t.MaxPositions * half];
            var sin = new float[cos.Length];
            for (int p = 0; p < t.MaxPositions; p++)
            {
                t.CosRow(p).CopyTo(cos.AsSpan(p * half, half));
                t.SinRow(p).CopyTo(sin.AsSpan(p * half, half));
            }

            using var cosCpu = torch.tensor(cos, [t.MaxPositions, half]);
            using var sinCpu = torch.tensor(sin, [t.MaxPositions, half]);
            Interlocked.Add(ref hostToDevice, 2);
            return Tuple.Create(cosCpu.to(TorchDevice, copy: true).DetachFromDisposeScope(), sinCpu.to(TorchDevice, copy: true).DetachFromDisposeScope());
        });
        return (pair.Item1, pair.Item2);
    }

    private TorchTensor KeepMask(LoraTensor x, float p, ulong seed)
    {
        // Masks come from libtorch's generator seeded by (step seed, adapter salt): a pure function of the
        // seed on this backend, so backward and recomputation draw the forward's mask again.
        using var generator = new Generator(seed & long.MaxValue, TorchDevice);
        var uniform = torch.rand(Dims(x.Shape), ScalarType.Float32, TorchDevice, generator: generator);
        return uniform.ge(p).to(ScalarType.Float32).mul(1f / (1f - p));
    }

    // NF4 -> values (shape) in dtype: table[code]·absmax of the code's block of 64.
    private TorchTensor Dequantize(LoraTensor t, ScalarType dtype)
    {
        var layout = t.Nf4Layout;
        var parts = Nf4(t);
        nf4Table ??= UploadTable();

        // Element i is in byte i/2: the low nibble when i is even, the high one when odd.
        var low = parts.Codes.bitwise_and(Nibble());
        var high = parts.Codes.bitwise_right_shift(Four());
        var index = torch.stack([low, high], 1).view(-1).to(ScalarType.Int64);
        var values = nf4Table.index_select(0, index);
        long padded = layout.Blocks * Nf4Layout.BlockSize;
        if (values.shape[0] < padded)
        {
            values = torch.nn.functional.pad(values, [0, padded - values.shape[0]]);
        }

        var scaled = values.narrow(0, 0, padded).view(layout.Blocks, Nf4Layout.BlockSize).mul(parts.BlockAbsmax().view(-1, 1));
        return scaled.view(-1).narrow(0, 0, layout.Length).view(Dims(t.Shape)).to(dtype);
    }

    private TorchTensor Nibble() => nibble ??= torch.tensor(new byte[] { 0xF }).to(TorchDevice, copy: true).DetachFromDisposeScope();

    private TorchTensor Four() => four ??= torch.tensor(new byte[] { 4 }).to(TorchDevice, copy: true).DetachFromDisposeScope();

    private TorchTensor UploadTable()
    {
        using var cpu = torch.tensor(Tensors.Nf4.Table.ToArray());
        Interlocked.Increment(ref hostToDevice);
        return cpu.to(TorchDevice, copy: true).DetachFromDisposeScope();
    }
}
