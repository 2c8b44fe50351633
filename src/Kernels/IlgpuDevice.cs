using ILGPU;
using ILGPU.Runtime;
using ILGPU.Runtime.CPU;
using ILGPU.Runtime.Cuda;
using NbpEngine.Kernels.Device;
using NbpEngine.Runtime.Backends;

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
                    : throw new BackendUnavailableException("no CUDA device found (is the NVIDIA driver installed?); use --backend cpu or ilgpu-cpu"),
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
    /// 1024-thread groups and measured 6-16 ms per launch here, this shape 0.6-0.9 ms. Profiling is on so that a
    /// session can mark its launches (LaunchProfile); it costs nothing until a marker is added.
    /// </summary>
    public static Context CreateContext()
    {
        CudaDriverLibrary.Install();
        return Context.Create(b => b.CPU(new CPUDevice(32, 8, 1)).Cuda().EnableAlgorithms().Profiling().Optimize(OptimizationLevel.O2));
    }

    /// <summary>True when a CUDA device can be used; never throws.</summary>
    public static bool CudaAvailable()
    {
        try
        {
            CudaDriverLibrary.Install();
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

    /// <summary>
    /// Device memory bandwidth, read + write bytes per second, of repeated device-to-device copies
    /// (1 GiB of floats on CUDA, 16 MiB on the CPU accelerator). The steps' roofline floor divides by it.
    /// </summary>
    public double CopyBandwidth()
    {
        long count = Kind == IlgpuDeviceKind.Cuda ? 1L << 28 : 1L << 22;
        using var a = Accelerator.Allocate1D<float>(count);
        using var b = Accelerator.Allocate1D<float>(count);
        a.View.CopyTo(b.View);
        Accelerator.Synchronize();
        const int repeats = 10;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < repeats; i++) a.View.CopyTo(b.View);
        Accelerator.Synchronize();
        return 2.0 * count * sizeof(float) * repeats / clock.Elapsed.TotalSeconds;
    }

    /// <summary>
    /// FLOP/s of this engine's own fp32 tiled matmul kernel on a 2048 x 2048 x 2048 product (64 on the
    /// CPU accelerator): the rate the FLOP-bound phases' floors divide by, as the CPU side uses its
    /// packed GEMM's rate.
    /// </summary>
    public double MatMulRate()
    {
        int n = Kind == IlgpuDeviceKind.Cuda ? 2048 : 64;
        var kernels = new KernelSet<F32Weights>(Accelerator);
        using var stream = Accelerator.CreateStream();
        using var a = Accelerator.Allocate1D<float>((long)n * n);
        using var w = Accelerator.Allocate1D<float>((long)n * n);
        using var bias = Accelerator.Allocate1D<float>(n);
        using var c = Accelerator.Allocate1D<float>((long)n * n);
        a.MemSetToZero(stream); w.MemSetToZero(stream); bias.MemSetToZero(stream);
        var grid = Ops.MatMulKernel.Launch(n, n, Shape.GroupSize);
        var args = new Ops.MatMulArgs { M = n, N = n, K = n, Lda = n, Ldc = n, HasBias = 1 };
        kernels.MatMul(stream, grid, a.View, new F32Weights(w.View), bias.View, c.View, args);
        stream.Synchronize();
        int repeats = Kind == IlgpuDeviceKind.Cuda ? 10 : 1;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        for (int i = 0; i < repeats; i++) kernels.MatMul(stream, grid, a.View, new F32Weights(w.View), bias.View, c.View, args);
        stream.Synchronize();
        return 2.0 * n * n * n * repeats / clock.Elapsed.TotalSeconds;
    }

    public void Dispose()
    {
        Accelerator.Dispose();
        Context.Dispose();
    }
}
