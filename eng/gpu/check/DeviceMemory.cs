using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Lora.GpuCheck;

/// <summary>
/// Memory in use, measured the way the PEFT side (eng/gpu/bench_peft.py) measures it, so the two columns compare:
/// on CUDA the device's total − free bytes from the driver (<c>cuMemGetInfo</c>, what
/// <c>torch.cuda.mem_get_info</c> reports): this process's CUDA context plus libtorch's caching pool, which
/// keeps its high-water mark; on the CPU the process's peak resident set (VmHWM).
/// TorchSharp exposes no allocator statistics (<c>max_memory_allocated</c>), so the pool is what can be read.
/// </summary>
internal static unsafe class DeviceMemory
{
    private static readonly delegate* unmanaged<nuint*, nuint*, int> MemGetInfo = Resolve();

    /// <summary>Bytes in use on the current CUDA device, or null when the driver cannot say (no context yet, no driver).</summary>
    public static long? CudaUsedBytes()
    {
        if (MemGetInfo == null)
        {
            return null;
        }

        nuint free, total;
        return MemGetInfo(&free, &total) == 0 ? (long)(total - free) : null;
    }

    /// <summary>Peak resident set of this process in bytes.</summary>
    public static long HostPeakBytes()
    {
        using var self = Process.GetCurrentProcess();
        return self.PeakWorkingSet64;
    }

    private static delegate* unmanaged<nuint*, nuint*, int> Resolve()
    {
        // The driver's library; libtorch's CUDA runtime has already loaded it when a CUDA device is in use.
        if (!NativeLibrary.TryLoad("libcuda.so.1", out var handle) || !NativeLibrary.TryGetExport(handle, "cuMemGetInfo_v2", out var address))
        {
            return null;
        }

        return (delegate* unmanaged<nuint*, nuint*, int>)address;
    }
}
