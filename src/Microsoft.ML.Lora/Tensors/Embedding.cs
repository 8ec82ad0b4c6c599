namespace Microsoft.ML.Lora.Tensors;

/// <summary>Embedding lookup and its gradient.</summary>
public static unsafe class Embedding
{
    /// <summary>ids (N), table (V,C) -> out (N,C). Throws naming the position and id when an id is outside [0, V).</summary>
    public static void Gather(int* ids, float* table, float* output, int n, int c, int v) => throw new NotImplementedException();

    /// <summary>ids (N), table (V,C) as bf16 bits -> out (N,C) as F32.</summary>
    public static void Gather(int* ids, ushort* table, float* output, int n, int c, int v) => throw new NotImplementedException();

    /// <summary>dout (N,C) -> dtable (V,C) accumulated: dtable[ids[i]] += dout[i].</summary>
    public static void ScatterAdd(int* ids, float* dout, float* dtable, int n, int c, int v) => throw new NotImplementedException();
}
