namespace Microsoft.ML.Lora.Modules;

/// <summary>Batch B of sequences of T tokens; activations are (N,C) with N = B·T rows, row n = b·T + t.</summary>
/// <param name="B">Sequences.</param>
/// <param name="T">Tokens per sequence.</param>
/// <param name="Positions">Position of each token within its example (B·T) for packed rows, or null (0…T−1 per row).</param>
public readonly record struct BatchShape(int B, int T, int[]? Positions = null)
{
    /// <summary>Rows N = B·T.</summary>
    public int N => checked(B * T);
}
