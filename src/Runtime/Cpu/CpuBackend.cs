using NbpEngine.Loader.Checkpoint;
using NbpEngine.Runtime.Backends;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// The SIMD CPU backend. Weights are used where the loader put them (memory map or converted), plus, with
/// <see cref="CpuWeightLayout.Packed"/>, packed copies of the matrices made when the first session is.
/// </summary>
public sealed class CpuBackend : IComputeBackend
{
    private readonly TransformerWeights _weights;
    private readonly Lazy<PackedTransformerWeights>? _packed;

    public CpuBackend(TransformerWeights weights, CpuWeightLayout layout = CpuWeightLayout.Packed)
    {
        _weights = weights;
        if (layout == CpuWeightLayout.Packed) _packed = new(() => new PackedTransformerWeights(_weights));
    }

    public string Name => "cpu";

    public IBackendSession CreateSession(int sequences, int capacity, int maxRows, int maxLogitRows, int threads)
        => new CpuBackendSession(_weights, _packed?.Value, sequences, capacity, maxRows, maxLogitRows, threads);

    /// <summary>The loader's weights belong to the model; the packed copies to the backend.</summary>
    public void Dispose()
    {
        if (_packed is { IsValueCreated: true }) _packed.Value.Dispose();
    }
}
