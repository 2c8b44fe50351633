namespace NbpEngine.Runtime.Backends;

/// <summary>Backends a session can be built on. Only <see cref="Cpu"/> exists so far; the ILGPU backend comes next.</summary>
public enum BackendKind
{
    /// <summary>The best available: CUDA when a device and the ILGPU backend exist, else the CPU.</summary>
    Auto,
    /// <summary>The SIMD CPU backend, the reference for every other.</summary>
    Cpu,
}
