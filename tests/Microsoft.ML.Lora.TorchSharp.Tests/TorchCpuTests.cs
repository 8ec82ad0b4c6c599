namespace Microsoft.ML.Lora.TorchSharp.Tests;

/// <summary>TorchSharp runs on the CPU libtorch of TorchSharp-cpu, here included (see docs/torchsharp.md).</summary>
public sealed class TorchCpuTests
{
    [Fact]
    public void OnesPlusOneRunsOnLibtorch()
    {
        torch.InitializeDeviceType(DeviceType.CPU);
        using var ones = torch.ones(3);
        using var sum = ones + 1;
        Assert.Equal(torch.ScalarType.Float32, sum.dtype);
        Assert.Equal(new[] { 2f, 2f, 2f }, sum.data<float>().ToArray());
    }

    [Fact]
    public void CudaIsUnavailableWithTheCpuBundle()
    {
        torch.InitializeDeviceType(DeviceType.CPU);
        Assert.False(torch.cuda.is_available());
        Assert.Equal(0, torch.cuda.device_count());
    }
}
