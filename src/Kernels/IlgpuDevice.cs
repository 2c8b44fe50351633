using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;

namespace NbpEngine.Kernels;

public enum IlgpuDeviceKind
{
    /// <summary>The first CUDA GPU.</summary>
    Cuda,
    /// <summary>ILGPU's CPU accelerator shaped like an NVIDIA GPU (warp 32): the kernels, emulated, for tests.</summary>
    Cpu,
}

/// <summary>Group sizes a device launches the kernels with; every kernel accepts any power of two in range.</summary>
public readonly record struct LaunchShape(int GroupSize, int AttentionQueryRows);

/// <summary>An ILGPU context and accelerator, created once per backend.</summary>
public sealed class IlgpuDevice : IDisposable
{
    public Context Context { get; }
    public Accelerator Accelerator { get; }
    public IlgpuDeviceKind Kind { get; }

    public IlgpuDevice(IlgpuDeviceKind kind)
    {
        Kind = kind;
        Context = CreateContext();
        try
        {
            Accelerator = kind switch
            {
                IlgpuDeviceKind.Cuda => Context.GetCudaDevices().Count > 0
                    ? Context.GetCudaDevice(0).CreateAccelerator(Context)
                    : throw new InvalidOperationException("no CUDA device found (is the NVIDIA driver installed?); use --backend cpu or ilgpu-cpu"),
                _ => Context.GetCPUDevice(0).CreateAccelerator(Context),
            };
        }
        catch
        {
            Context.Dispose();
            throw;
        }
    }

    /// <summary>
    /// O2, no debug assertions. The CPU device has NVIDIA's warp of 32 (so warp-size bugs show up in
    /// tests) but at most 256 threads per group on one multiprocessor: CPUDeviceKind.Nvidia emulates
    /// 1024-thread groups and measured 6-16 ms per launch here, this shape 0.6-0.9 ms.
    /// </summary>
    public static Context CreateContext() =>
        Context.Create(b => b.CPU(new CPUDevice(32, 8, 1)).Cuda().EnableAlgorithms().Optimize(OptimizationLevel.O2));

    /// <summary>True when a CUDA device can be used; never throws.</summary>
    public static bool CudaAvailable()
    {
        try
        {
            using var context = Context.Create(b => b.Cuda());
            return context.GetCudaDevices().Count > 0;
        }
        catch (Exception)
        {
            return false;
        }
    }

    /// <summary>Threads per group for the row kernels and the matmul, and warps (query rows) per attention group.</summary>
    /// <remarks>
    /// On CUDA, 256 threads and 4 warps. On the CPU accelerator every barrier and shuffle costs about a
    /// context switch per emulated thread, so groups are one warp: the same kernels, ~8x cheaper there.
    /// </remarks>
    public LaunchShape Shape => Kind == IlgpuDeviceKind.Cuda ? new LaunchShape(256, 4) : new LaunchShape(32, 1);

    public string Describe() => $"{Kind} ({Accelerator.Name}, warp {Accelerator.WarpSize})";

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}
