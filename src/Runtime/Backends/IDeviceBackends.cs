using NbpEngine.Core;
using NbpEngine.Loader.Checkpoint;

namespace NbpEngine.Runtime.Backends;

/// <summary>
/// Makes the accelerator backends (<see cref="BackendKind.Cuda"/>, <see cref="BackendKind.IlgpuCpu"/>). They live
/// in NbpEngine.Kernels, which builds on this project, so the CPU runtime never loads ILGPU: a host that wants
/// them passes NbpEngine.Kernels' provider in <see cref="Api.NbpModelOptions.DeviceBackends"/> (NbpPipeline does).
/// </summary>
public interface IDeviceBackends
{
    /// <summary>True when a CUDA device can be used; never throws. Decides <see cref="BackendKind.Auto"/>.</summary>
    bool CudaAvailable { get; }

    /// <summary>Uploads <paramref name="weights"/> to the device once; the backend is shared by every session of a model.</summary>
    IComputeBackend Create(BackendKind kind, TransformerWeights weights, WeightStorage storage, bool tensorCores);
}

/// <summary>A backend was asked for that this process or machine cannot give (no CUDA device, no provider).</summary>
public sealed class BackendUnavailableException(string message) : NbpInputException(message);
