using System.CommandLine;
using Microsoft.ML.Lora.Tensors;
using Microsoft.ML.Lora.TorchSharp;

namespace Microsoft.ML.Lora.Cli;

/// <summary>
/// The options that say where a model runs: <c>--backend native|torch</c>, <c>--device cpu|cuda|cuda:N</c>,
/// and for commands that train or evaluate, <c>--bf16-compute</c> (torch only).
/// </summary>
internal sealed class BackendOptions
{
    public Option<string?> Backend { get; } = new("--backend") { Description = "native (the CPU engine; the default) or torch (libtorch through TorchSharp; the default with --device cuda)" };

    public Option<string> Device { get; } = new("--device") { Description = "cpu, cuda or cuda:N (CUDA needs --backend torch and TorchSharp's CUDA native package; see docs/torchsharp.md)", DefaultValueFactory = _ => "cpu" };

    public Option<bool> Bf16Compute { get; } = new("--bf16-compute") { Description = "with --backend torch: matrix products in BF16 with F32 accumulation, as autocast does (norms, softmax, loss, LoRA weights and AdamW stay F32)" };

    /// <summary>Adds <c>--backend</c> and <c>--device</c>, and <c>--bf16-compute</c> when asked, to <paramref name="command"/>.</summary>
    public void AddTo(Command command, bool withBf16Compute = false)
    {
        command.Options.Add(Backend);
        command.Options.Add(Device);
        if (withBf16Compute)
        {
            command.Options.Add(Bf16Compute);
        }
    }

    /// <summary>
    /// The backend the options name, with <paramref name="threads"/> host threads (the native engine's too:
    /// loading and NF4 packing run on it). Throws naming the option when the backend cannot run here; call it
    /// before writing anything, so that a bad device leaves no output behind.
    /// </summary>
    public Backend Create(ParseResult parse, int threads)
    {
        Tensors.Backend.Native.Threads = threads;
        var backend = Backends.Create(parse.GetValue(Backend), parse.GetValue(Device), parse.GetResult(Bf16Compute) is not null && parse.GetValue(Bf16Compute));
        backend.Threads = threads;
        return backend;
    }
}
