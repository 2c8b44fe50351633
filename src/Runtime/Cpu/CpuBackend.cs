using NbpEngine.Loader.Checkpoint;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Runtime.Cpu;

/// <summary>The SIMD CPU backend. Weights are used where the loader put them (memory map or converted).</summary>
public sealed class CpuBackend : IComputeBackend
{
    private readonly TransformerWeights _weights;

    public CpuBackend(TransformerWeights weights) => _weights = weights;

    public string Name => "cpu";

    public bool Supports(BackendCapability capability) => capability switch
    {
        BackendCapability.AllocationFreeSteps => true,
        BackendCapability.LogitsReadback => true,
        _ => false,
    };

    public IBackendSession CreateSession(int capacity, int maxRows, int maxLogitRows, int threads)
        => new CpuBackendSession(_weights, capacity, maxRows, maxLogitRows, threads);

    /// <summary>The weights belong to the model, not to the backend.</summary>
    public void Dispose() { }
}
