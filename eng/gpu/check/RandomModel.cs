using System.Buffers.Binary;
using Microsoft.ML.Lora.Formats;
using Microsoft.ML.Lora.Models;

namespace Microsoft.ML.Lora.GpuCheck;

/// <summary>
/// Writes a randomly initialised Llama model folder (config.json + BF16 model.safetensors) that both sides of the
/// benchmark load, so that they train the same weights on the same tokens (<see cref="Tokens"/>). Matrices are
/// N(0, 0.02²) as transformers initialises Llama, norms 1. Values come from a counter-based generator per
/// 64 Ki-element chunk, filled in parallel: 1.2 B parameters take seconds, where the engine's sequential
/// <c>CreateRandom</c> takes minutes.
/// </summary>
internal static class RandomModel
{
    private const int Chunk = 1 << 16;

    public static void Write(string directory, LlamaConfig config)
    {
        Directory.CreateDirectory(directory);
        int c = config.HiddenSize, hs = config.HeadDim, q = config.NumAttentionHeads * hs, kv = config.NumKeyValueHeads * hs, inter = config.IntermediateSize;
        var shapes = new List<(string Name, int[] Shape, bool Norm)> { ("model.embed_tokens.weight", [config.VocabSize, c], false) };
        for (int i = 0; i < config.NumHiddenLayers; i++)
        {
            string p = $"model.layers.{i}.";
            shapes.Add((p + "self_attn.q_proj.weight", [q, c], false));
            shapes.Add((p + "self_attn.k_proj.weight", [kv, c], false));
            shapes.Add((p + "self_attn.v_proj.weight", [kv, c], false));
            shapes.Add((p + "self_attn.o_proj.weight", [c, q], false));
            shapes.Add((p + "mlp.gate_proj.weight", [inter, c], false));
            shapes.Add((p + "mlp.up_proj.weight", [inter, c], false));
            shapes.Add((p + "mlp.down_proj.weight", [c, inter], false));
            shapes.Add((p + "input_layernorm.weight", [c], true));
            shapes.Add((p + "post_attention_layernorm.weight", [c], true));
        }

        shapes.Add(("model.norm.weight", [c], true));
        shapes.Add(("lm_head.weight", [config.VocabSize, c], false));
        var entries = shapes.Select((s, index) => SafeTensorEntry.FromBytes(s.Name, "BF16", s.Shape, Fill(s.Shape, s.Norm, (ulong)index)));
        SafeTensorsWriter.WriteModel(directory, entries);
        File.WriteAllText(Path.Combine(directory, "config.json"), config.ToJson());
    }

    /// <summary>
    /// Row b of the benchmark batch: T token ids from the 32-bit LCG x ← 1664525·x + 1013904223 (Numerical Recipes)
    /// seeded with b + 1, token = (x &gt;&gt; 8) mod V. eng/gpu/bench_peft.py computes the same ids.
    /// </summary>
    public static int[] Tokens(int row, int length, int vocab)
    {
        uint x = (uint)row + 1;
        var ids = new int[length];
        for (int t = 0; t < length; t++)
        {
            x = unchecked((1664525 * x) + 1013904223);
            ids[t] = (int)((x >> 8) % (uint)vocab);
        }

        return ids;
    }

    private static byte[] Fill(int[] shape, bool norm, ulong tensor)
    {
        long count = shape.Aggregate(1L, static (a, d) => a * d);
        var bytes = new byte[count * 2];
        if (norm)
        {
            for (long i = 0; i < count; i++)
            {
                BinaryPrimitives.WriteUInt16LittleEndian(bytes.AsSpan((int)(i * 2)), 0x3F80); // 1.0 in BF16
            }

            return bytes;
        }

        int chunks = (int)((count + Chunk - 1) / Chunk);
        Parallel.For(0, chunks, chunk =>
        {
            ulong state = (tensor << 32) ^ (ulong)chunk;
            long start = (long)chunk * Chunk, end = Math.Min(count, start + Chunk);
            var span = bytes.AsSpan((int)(start * 2), (int)((end - start) * 2));
            for (int i = 0; i + 1 < span.Length; i += 4)
            {
                // Box–Muller: two normals from two uniforms in (0, 1].
                double u1 = (SplitMix(ref state) >> 11) * (1.0 / (1UL << 53)) + (1.0 / (1UL << 54));
                double u2 = (SplitMix(ref state) >> 11) * (1.0 / (1UL << 53));
                double r = 0.02 * Math.Sqrt(-2 * Math.Log(u1));
                WriteBf16(span[i..], (float)(r * Math.Cos(2 * Math.PI * u2)));
                if (i + 2 < span.Length)
                {
                    WriteBf16(span[(i + 2)..], (float)(r * Math.Sin(2 * Math.PI * u2)));
                }
            }
        });
        return bytes;
    }

    // Round to nearest even (finite inputs only).
    private static void WriteBf16(Span<byte> destination, float value)
    {
        uint bits = BitConverter.SingleToUInt32Bits(value);
        bits += 0x7FFF + ((bits >> 16) & 1);
        BinaryPrimitives.WriteUInt16LittleEndian(destination, (ushort)(bits >> 16));
    }

    // SplitMix64 (Steele, Lea, Flood 2014).
    private static ulong SplitMix(ref ulong state)
    {
        ulong z = state += 0x9E3779B97F4A7C15;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EB;
        return z ^ (z >> 31);
    }
}
