using NbpEngine.Benchmarks;
using NbpEngine.Kernels;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// bench/NbpEngine.Benchmarks/DeviceBenchmarks.cs only runs where a CUDA device is; this runs its setup
/// and each kernel method once on ILGPU's CPU accelerator at small shapes, so a GPU machine does not
/// find a broken benchmark. (cuBLAS needs the CUDA accelerator: its method must refuse clearly here.)
/// </summary>
public class DeviceBenchmarkTests
{
    [Fact]
    public void EveryKernelBenchmarkRunsOnTheCpuAccelerator()
    {
        using var bench = new DeviceBenchmarks { Kind = IlgpuDeviceKind.Cpu, Rows = 16, Out = 64, In = 64, Heads = 2, Keys = 48, Vocab = 500 };
        bench.Setup();
        bench.TiledMatMul();
        bench.TensorCoreMatMul();
        bench.AttentionStep();
        bench.DecodeAttentionStep();
        bench.Sampling();
        var error = Assert.Throws<InvalidOperationException>(bench.CuBlasSgemm);
        Assert.Contains("CUDA", error.Message);
    }

    /// <summary>nbp-bench's device ceilings (copy bandwidth, own matmul rate) measure something finite and positive.</summary>
    [Fact]
    public void DeviceCeilingsAreMeasured()
    {
        using var device = new IlgpuDevice(IlgpuDeviceKind.Cpu);
        double bandwidth = device.CopyBandwidth(), rate = device.MatMulRate();
        Assert.True(double.IsFinite(bandwidth) && bandwidth > 1e6, $"copy bandwidth {bandwidth}");
        Assert.True(double.IsFinite(rate) && rate > 1e3, $"matmul rate {rate}");
    }
}
