namespace NbpEngine.Runtime.Backends;

/// <summary>Backends a session can be built on.</summary>
public enum BackendKind
{
    /// <summary>CUDA when a device is present, else the CPU backend.</summary>
    Auto,
    /// <summary>The SIMD CPU backend, the reference for every other.</summary>
    Cpu,
    /// <summary>The ILGPU kernels on the first CUDA GPU.</summary>
    Cuda,
    /// <summary>The ILGPU kernels on ILGPU's CPU accelerator (emulated GPU, slow): for tests and debugging.</summary>
    IlgpuCpu,
}
