using Microsoft.ML.Lora.Models;
using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Models;

/// <summary>Runs alone: it reads the process-wide count of live native tensor bytes, which parallel tests would move.</summary>
[CollectionDefinition(nameof(NativeMemoryCollection), DisableParallelization = true)]
public sealed class NativeMemoryCollection;

/// <summary>A model load stops at a cancellation between tensors and keeps nothing it had read.</summary>
[Collection(nameof(NativeMemoryCollection))]
public sealed class LoadCancellationTests
{
    [Fact]
    public void ACancelledLoadStopsBetweenTensorsAndKeepsNothing()
    {
        long before = NativePool.LiveBytes;
        using var cancelled = new CancellationTokenSource();
        cancelled.Cancel();
        Assert.ThrowsAny<OperationCanceledException>(() => LlamaForCausalLM.Load(FixturePaths.Case("llama_gqa"), cancellationToken: cancelled.Token));
        Assert.Equal(before, NativePool.LiveBytes);

        // Cancelled by a timer, at whatever point of the load it fires (or after it): loaded or not, once the
        // model is disposed nothing it read stays allocated.
        for (int delayMs = 0; delayMs < 3; delayMs++)
        {
            using var soon = new CancellationTokenSource(TimeSpan.FromMilliseconds(delayMs));
            try
            {
                using var model = LlamaForCausalLM.Load(FixturePaths.Case("gemma2"), cancellationToken: soon.Token);
            }
            catch (OperationCanceledException)
            {
            }

            Assert.Equal(before, NativePool.LiveBytes);
        }
    }
}
