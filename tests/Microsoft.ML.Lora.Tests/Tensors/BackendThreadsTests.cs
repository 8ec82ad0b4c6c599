using Microsoft.ML.Lora.Tensors;

namespace Microsoft.ML.Lora.Tests.Tensors;

/// <summary>The native engine's thread count is its backend's setting, and the kernels follow it.</summary>
[Collection(CpuParallelThreadsCollection.Name)]
public sealed class BackendThreadsTests
{
    [Fact]
    public void TheNativeBackendsThreadsAreTheKernelsThreads()
    {
        int saved = Backend.Native.Threads;
        try
        {
            Backend.Native.Threads = 1;
            Assert.Equal(1, CpuParallel.Threads);
            int parts = 0;
            CpuParallel.For(1000, 1, (_, _) => Interlocked.Increment(ref parts));
            Assert.Equal(1, parts);

            Backend.Native.Threads = 3;
            Assert.Equal(3, CpuParallel.Threads);
            parts = 0;
            CpuParallel.For(1000, 1, (_, _) => Interlocked.Increment(ref parts));
            Assert.Equal(3, parts);

            var e = Assert.Throws<ArgumentOutOfRangeException>(() => Backend.Native.Threads = 0);
            Assert.Contains($"threads must be 1 … {Backend.MaxThreads}", e.Message, StringComparison.Ordinal);
            Assert.Throws<ArgumentOutOfRangeException>(() => Backend.Native.Threads = Backend.MaxThreads + 1);
            Assert.Equal(3, Backend.Native.Threads);
        }
        finally
        {
            Backend.Native.Threads = saved;
        }
    }
}
