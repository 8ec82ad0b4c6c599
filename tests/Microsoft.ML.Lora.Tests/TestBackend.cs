using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests;

/// <summary>
/// The backend the shared golden tests run on in this test project: the native engine. The torch
/// backend's test project compiles the same test files with its own TestBackend (libtorch on the CPU).
/// </summary>
internal static class TestBackend
{
    /// <summary>This project's backend.</summary>
    public static Backend Current => Backend.Native;

    /// <summary>The model moved to <see cref="Current"/> (a no-op here).</summary>
    public static LlamaForCausalLM OnTestBackend(this LlamaForCausalLM model) => model.To(Current);
}
