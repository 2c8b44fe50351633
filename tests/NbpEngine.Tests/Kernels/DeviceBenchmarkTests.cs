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
        bench.Sampling();
        var error = Assert.Throws<InvalidOperationException>(bench.CuBlasSgemm);
        Assert.Contains("CUDA", error.Message);
    }
}
