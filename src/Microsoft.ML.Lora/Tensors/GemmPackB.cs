namespace Microsoft.ML.Lora.Tensors;

/// <summary>
/// How <see cref="GemmDriver"/> fills a packed B panel (layout in <see cref="GemmPack"/>) from the B
/// operand's storage <typeparamref name="T"/>: a strategy type, so the driver's loops are one code for
/// every B dtype.
/// </summary>
internal unsafe interface IGemmPackB<T>
    where T : unmanaged
{
    /// <summary>Floats of per-thread scratch <see cref="Pack"/> needs for slices up to <paramref name="kcMax"/> deep (0: none).</summary>
    static abstract long ScratchFloats(in GemmJob<T> job, int kcMax);

    /// <summary>Packs op(B) k [p0,p0+kc) × columns [j0,j0+nc) into <paramref name="dst"/>.</summary>
    static abstract void Pack(in GemmJob<T> job, int p0, int kc, int j0, int nc, float* dst, float* scratch);
}

/// <summary>Dense F32 or BF16 B, read element by element through <typeparamref name="TElement"/>.</summary>
internal readonly unsafe struct DensePackB<T, TElement> : IGemmPackB<T>
    where T : unmanaged
    where TElement : IGemmElement<T>
{
    public static long ScratchFloats(in GemmJob<T> job, int kcMax) => 0;

    public static void Pack(in GemmJob<T> job, int p0, int kc, int j0, int nc, float* dst, float* scratch) =>
        GemmPack.PackB<T, TElement>(job.Config.Isa, job.TransB, job.B, job.Ldb, p0, kc, j0, nc, job.Config.Nr, dst);
}

/// <summary>NF4 B (codes and state in one block, <see cref="Nf4Layout"/>), dequantized one micro-panel at a time.</summary>
internal readonly unsafe struct Nf4PackB : IGemmPackB<byte>
{
    // Transposed B decodes one micro-panel's rows (nr × kc) before transposing them.
    public static long ScratchFloats(in GemmJob<byte> job, int kcMax) => job.TransB ? (long)job.Config.Nr * kcMax : 0;

    public static void Pack(in GemmJob<byte> job, int p0, int kc, int j0, int nc, float* dst, float* scratch) =>
        GemmPack.PackBNf4(job.Config.Isa, job.TransB, job.Nf4!, job.B, job.Ldb, p0, kc, j0, nc, job.Config.Nr, dst, scratch);
}
