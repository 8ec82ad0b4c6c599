namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// The seam between the modules and the hardware: where tensors live and every operation the model
/// runs on them, forward and backward. <see cref="NativeBackend"/> is the CPU engine (packed AVX-512
/// GEMM, bit-reproducible); other backends (libtorch through TorchSharp, CPU or CUDA) run the same
/// modules. A backend never changes what the modules compute, only where and how fast.
/// <para>Legend: B batch, T time, N = B·T rows, C channels, OC out channels, V vocab, NH heads, NKV
/// key/value heads, HS head size, r rank. Every operand of one call lives on this backend; outputs are
/// written in place into tensors the caller allocated.</para>
/// </summary>
public abstract class Backend
{
    /// <summary>The CPU engine with the processor count as its thread count.</summary>
    public static NativeBackend Native { get; } = new();

    /// <summary>Short name, e.g. <c>native</c> or <c>torch</c>.</summary>
    public abstract string Name { get; }

    /// <summary>Device, e.g. <c>cpu</c> or <c>cuda:0</c>.</summary>
    public abstract string Device { get; }

    /// <summary>Whether tensors of this backend are plain host memory (their pointers and spans may be read).</summary>
    public abstract bool IsHost { get; }

    /// <summary>
    /// Host threads this backend's CPU work uses (at least 1). The native engine partitions every kernel
    /// over this many threads (results are bit-identical for any count); libtorch on the CPU uses it for
    /// its intra-op pool. Like libtorch's own setting it holds for the whole process, for every model on
    /// this backend: set it once, before training or inference starts.
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Less than 1 or more than <see cref="MaxThreads"/>.</exception>
    public abstract int Threads { get; set; }

    /// <summary>The most <see cref="Threads"/> a backend accepts.</summary>
    public const int MaxThreads = CpuParallel.MaxThreads;

    /// <inheritdoc/>
    public override string ToString() => $"{Name} ({Device})";

    // ---- memory -------------------------------------------------------------------------------

    /// <summary>A tensor with undefined contents (F32 or BF16).</summary>
    public abstract Tensor Empty(DType dtype, params int[] shape);

    /// <summary>A tensor of zeros.</summary>
    public Tensor Zeros(DType dtype, params int[] shape)
    {
        var t = Empty(dtype, shape);
        Clear(t);
        return t;
    }

    /// <summary>Sets every element of <paramref name="t"/> to zero.</summary>
    public abstract void Clear(Tensor t);

    /// <summary>A copy of a host tensor on this backend (same dtype and shape; NF4 keeps its packed codes and state).</summary>
    public abstract Tensor FromHost(Tensor host);

    /// <summary>A host copy of <paramref name="t"/> (same dtype and shape).</summary>
    public abstract Tensor ToHost(Tensor t);

    /// <summary>Overwrites <paramref name="destination"/> (on this backend) with the values of a host tensor of the same dtype and element count.</summary>
    public abstract void CopyFromHost(Tensor host, Tensor destination);

    /// <summary>A new tensor of <paramref name="dtype"/> with the values of <paramref name="t"/> (F32↔BF16 rounds to nearest even; NF4 dequantizes).</summary>
    public abstract Tensor Convert(Tensor t, DType dtype);

    /// <summary>A tensor sharing <paramref name="t"/>'s memory with another shape of equal element count.</summary>
    public abstract Tensor View(Tensor t, int[] shape);

    /// <summary>
    /// Copies <paramref name="count"/> F32 elements from flat offset <paramref name="sourceOffset"/> of
    /// <paramref name="source"/> to flat offset <paramref name="destinationOffset"/> of <paramref name="destination"/>.
    /// </summary>
    public abstract void Copy(Tensor source, long sourceOffset, Tensor destination, long destinationOffset, long count);

    /// <summary>
    /// Copies columns <paramref name="sourceColumn"/> … +<paramref name="width"/> of every row of the 2-D F32
    /// <paramref name="source"/> into columns <paramref name="destinationColumn"/> … of <paramref name="destination"/>
    /// (same row count): how fused projections (Phi-3's qkv_proj, gate_up_proj) are split and joined.
    /// </summary>
    public abstract void CopyColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width);

    /// <summary>Checks the arguments of <see cref="CopyColumns"/>.</summary>
    protected static void CheckColumns(Tensor source, int sourceColumn, Tensor destination, int destinationColumn, int width)
    {
        if (source.Rank != 2 || destination.Rank != 2 || source.Dim(0) != destination.Dim(0) || width < 0
            || sourceColumn < 0 || sourceColumn + width > source.Dim(1) || destinationColumn < 0 || destinationColumn + width > destination.Dim(1))
        {
            throw new ArgumentOutOfRangeException(nameof(width), $"CopyColumns: columns [{sourceColumn}, +{width}) of {source} into [{destinationColumn}, +{width}) of {destination} do not fit");
        }
    }

    // ---- dense algebra ------------------------------------------------------------------------

    /// <summary>
    /// c (M,N) = (accumulate ? c : 0) + op(a)·op(b): a F32 (M,K), or (K,M) with <paramref name="transA"/>;
    /// b (K,N), or (N,K) with <paramref name="transB"/>, in F32, BF16 or NF4 (a Linear weight; NF4 is
    /// dequantized just for this product, never kept).
    /// </summary>
    public abstract void MatMul(Tensor a, bool transA, Tensor b, bool transB, Tensor c, bool accumulate);

    /// <summary>output = a + b, elementwise (output may alias either).</summary>
    public abstract void Add(Tensor a, Tensor b, Tensor output);

    /// <summary>x ← s·x.</summary>
    public abstract void Scale(Tensor x, float s);

    /// <summary>y (N,OC) += bias (OC) on every row.</summary>
    public abstract void AddRowVector(Tensor y, Tensor bias);

    /// <summary>x (N,W): row n ← scales[n]·row n (per-token loss weights on a logits gradient).</summary>
    public abstract void ScaleRows(Tensor x, float[] scales);

    /// <summary>sum (OC) += Σₙ dy (N,OC)[n]: a bias gradient.</summary>
    public abstract void AccumulateRowSum(Tensor dy, Tensor sum);

    /// <summary>
    /// Σ x² over every element of every tensor, summed in double, as one host number (a gradient norm:
    /// one transfer for all the tensors). The native backend adds the squares in tensor, then element, order.
    /// </summary>
    public abstract double SumOfSquares(IReadOnlyList<Tensor> tensors);

    /// <summary>Σ x, summed in double in element order, as a host number (the loss out of a step).</summary>
    public abstract double Sum(Tensor x);

    // ---- layers -------------------------------------------------------------------------------

    /// <summary>
    /// x (N,C), weight (C) -> y (N,C) = x·rstd·(weight + <paramref name="weightOffset"/>), rstd (N). Gemma's norms
    /// scale by (1 + weight): offset 1.
    /// </summary>
    public abstract void RmsNormForward(Tensor x, Tensor weight, Tensor y, Tensor rstd, float eps, float weightOffset = 0);

    /// <summary>dy (N,C), x, weight, rstd -> dx (N,C) overwritten; dweight (C) accumulated when not null.</summary>
    public abstract void RmsNormBackward(Tensor dy, Tensor x, Tensor weight, Tensor rstd, Tensor dx, Tensor? dweight, float weightOffset = 0);

    /// <summary>
    /// x (B,T,NH,HS) rotated in place (rotate-half layout). Token t of row b has position
    /// <paramref name="positions"/>[b·T + t] when given (packing, generation past a cache), else t.
    /// </summary>
    public abstract void RopeForward(Tensor x, RopeTable table, int b, int t, int nh, int[]? positions);

    /// <summary>dx (B,T,NH,HS) through the rotation, in place (the inverse rotation).</summary>
    public abstract void RopeBackward(Tensor dx, RopeTable table, int b, int t, int nh, int[]? positions);

    /// <summary>
    /// Causal grouped-query attention: q (B,T,NH,HS), k, v (B,T,NKV,HS) -> o (B,T,NH,HS),
    /// lse (B,NH,T) (a backend may leave lse unwritten if its Backward does not read it).
    /// With <paramref name="positions"/>, the query at column i with position p attends to columns i−p … i.
    /// <paramref name="spec"/>: sliding window, score scale (default 1/√HS) and logit soft-capping.
    /// </summary>
    public abstract void AttentionForward(Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, int b, int t, int nh, int nkv, int[]? positions, AttentionSpec spec = default);

    /// <summary>dout (B,T,NH,HS) and the forward's tensors -> dq, dk, dv, overwritten.</summary>
    public abstract void AttentionBackward(Tensor dout, Tensor q, Tensor k, Tensor v, Tensor o, Tensor lse, Tensor dq, Tensor dk, Tensor dv, int b, int t, int nh, int nkv, int[]? positions, AttentionSpec spec = default);

    /// <summary>
    /// Inference attention over a KV cache: q (B,Tn,NH,HS) at positions past … past+Tn−1; kCache,
    /// vCache (B,TMax,NKV,HS) filled up to past+Tn -> o (B,Tn,NH,HS). <paramref name="spec"/> as in <see cref="AttentionForward"/>.
    /// </summary>
    public abstract void AttentionDecode(Tensor q, Tensor kCache, Tensor vCache, Tensor o, int b, int tn, int past, int nh, int nkv, AttentionSpec spec = default);

    /// <summary>gate, up (N,I) -> h = silu(gate)·up.</summary>
    public abstract void SwiGluForward(Tensor gate, Tensor up, Tensor h);

    /// <summary>dh, gate, up -> dgate, dup, overwritten.</summary>
    public abstract void SwiGluBackward(Tensor dh, Tensor gate, Tensor up, Tensor dgate, Tensor dup);

    /// <summary>gate, up (N,I) -> h = gelu_tanh(gate)·up (Gemma's GeGLU, <c>gelu_pytorch_tanh</c>).</summary>
    public abstract void GeGluForward(Tensor gate, Tensor up, Tensor h);

    /// <summary>dh, gate, up -> dgate, dup, overwritten.</summary>
    public abstract void GeGluBackward(Tensor dh, Tensor gate, Tensor up, Tensor dgate, Tensor dup);

    /// <summary>x ← cap·tanh(x/cap) in place (Gemma 2's final logit soft-capping).</summary>
    public abstract void SoftcapForward(Tensor x, float cap);

    /// <summary>dy ← dy·(1 − (y/cap)²) in place, y the capped values.</summary>
    public abstract void SoftcapBackward(Tensor dy, Tensor y, float cap);

    /// <summary>ids (N), table (V,C) F32 or BF16 -> output (N,C) F32.</summary>
    public abstract void EmbeddingGather(int[] ids, Tensor table, Tensor output);

    /// <summary>dtable (V,C)[ids[i]] += dout (N,C)[i].</summary>
    public abstract void EmbeddingScatterAdd(int[] ids, Tensor dout, Tensor dtable);

    /// <summary>
    /// logits (N,V), targets (N) -> losses (N) (0 where the target is <see cref="CrossEntropy.IgnoreIndex"/>).
    /// With <paramref name="dlogits"/> (may be <paramref name="logits"/> itself), writes (softmax − onehot)·<paramref name="gradScale"/>.
    /// </summary>
    public abstract void CrossEntropy(Tensor logits, int[] targets, Tensor losses, Tensor? dlogits, float gradScale);

    // ---- adapters and optimizer ---------------------------------------------------------------

    /// <summary>
    /// output = x·mask/(1−p): inverted dropout whose mask is a pure function of (<paramref name="seed"/>,
    /// element index), so <see cref="AccumulateMasked"/> and a recomputed forward draw the same mask.
    /// </summary>
    public abstract void DropoutForward(Tensor x, Tensor output, float p, ulong seed);

    /// <summary>destination += source·mask/(1−p) with the mask of <see cref="DropoutForward"/> for the same seed.</summary>
    public abstract void AccumulateMasked(Tensor source, Tensor destination, float p, ulong seed);

    /// <summary>
    /// One AdamW step on parameter p with gradient g and moments m, v (all F32, one shape):
    /// p ← p·decay; m ← β₁m + (1−β₁)g; v ← β₂v + (1−β₂)g²; p ← p − stepSize·m / (√v·invSqrtBc2 + ε).
    /// </summary>
    public abstract void AdamWUpdate(Tensor p, Tensor g, Tensor m, Tensor v, in AdamWCoefficients c);
}

/// <summary>Per-step AdamW scalars, computed in double and rounded once to float (see <see cref="Backend.AdamWUpdate"/>).</summary>
public readonly record struct AdamWCoefficients(float Beta1, float OneMinusBeta1, float Beta2, float OneMinusBeta2, float Epsilon, float Decay, float StepSize, float InvSqrtBiasCorrection2)
{
    /// <summary>The scalars of step <paramref name="t"/> (1-based), as PyTorch's AdamW forms them.</summary>
    public static AdamWCoefficients For(long t, double lr, double beta1, double beta2, double epsilon, double weightDecay)
    {
        double bc1 = 1.0 - Math.Pow(beta1, t), bc2 = 1.0 - Math.Pow(beta2, t);
        return new((float)beta1, (float)(1.0 - beta1), (float)beta2, (float)(1.0 - beta2), (float)epsilon, (float)(1.0 - (lr * weightDecay)), (float)(lr / bc1), (float)(1.0 / Math.Sqrt(bc2)));
    }
}
