using NbpEngine.Core;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.Sampling;
using NbpEngine.Loader.Checkpoint;
using NbpEngine.Runtime.Attention;
using NbpEngine.Runtime.Api;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Sampling;

namespace NbpEngine.Kernels.Backend;

/// <summary>
/// The ILGPU kernels (src/Kernels) behind the backend interface: CUDA on NVIDIA GPUs, or ILGPU's CPU
/// accelerator for tests. Weights are uploaded once, when the backend is created.
/// </summary>
public sealed class IlgpuBackends : IDeviceBackends
{
    /// <summary>The provider to pass in <see cref="NbpModelOptions.DeviceBackends"/>.</summary>
    public static IlgpuBackends Provider { get; } = new();

    private IlgpuBackends()
    {
    }

    public bool CudaAvailable => IlgpuDevice.CudaAvailable();

    /// <param name="tensorCores">prefill matmuls on tensor cores (fp16-rounded operands, fp32 accumulation)</param>
    public IComputeBackend Create(BackendKind kind, TransformerWeights weights, WeightStorage storage, bool tensorCores) =>
        Create(DeviceKind(kind), weights, storage, tensorCores);

    /// <summary>The ILGPU device a backend kind runs on.</summary>
    public static IlgpuDeviceKind DeviceKind(BackendKind kind) => kind switch
    {
        BackendKind.Cuda => IlgpuDeviceKind.Cuda,
        BackendKind.IlgpuCpu => IlgpuDeviceKind.Cpu,
        _ => throw new ArgumentOutOfRangeException(nameof(kind), kind, "not an ILGPU backend"),
    };

    private static IComputeBackend Create(IlgpuDeviceKind device, TransformerWeights weights, WeightStorage storage, bool tensorCores) => storage switch
    {
        WeightStorage.F32 => new IlgpuBackend<F32Weights>(device, weights, storage, tensorCores),
        WeightStorage.F16 => new IlgpuBackend<F16Weights>(device, weights, storage, tensorCores),
        WeightStorage.BF16 => new IlgpuBackend<BF16Weights>(device, weights, storage, tensorCores),
        _ => throw new ArgumentOutOfRangeException(nameof(storage), storage, "unknown weight storage"),
    };
}

internal sealed class IlgpuBackend<TW> : IComputeBackend where TW : struct, IWeightView
{
    private readonly IlgpuDevice _device;
    private readonly KernelSet<TW> _kernels;
    private readonly DeviceWeights<TW> _weights;
    private readonly bool _tensorCores;

    public string Name { get; }

    public IlgpuBackend(IlgpuDeviceKind kind, TransformerWeights weights, WeightStorage storage, bool tensorCores)
    {
        _tensorCores = tensorCores;
        _device = new IlgpuDevice(kind);
        try
        {
            _kernels = new KernelSet<TW>(_device.Accelerator);
            _weights = new DeviceWeights<TW>(_device.Accelerator, weights);
        }
        catch
        {
            _device.Dispose();
            throw;
        }
        Name = (kind == IlgpuDeviceKind.Cuda ? "cuda" : "ilgpu-cpu") + (storage == WeightStorage.F32 ? "" : $" ({storage} weights)")
            + (tensorCores ? " (tensor-core prefill)" : "");
    }

    public IBackendSession CreateSession(int sequences, int capacity, int maxRows, int maxLogitRows, int threads)
        => new Session(new DeviceSession<TW>(_device.Accelerator, _device.Shape, _kernels, _weights, sequences, capacity, maxRows, maxLogitRows, _tensorCores));

    public void Dispose()
    {
        _weights.Dispose();
        _device.Dispose();
    }

    private sealed class Session(DeviceSession<TW> device) : IBackendSession
    {
        public int Sequences => device.Sequences;
        public int Capacity => device.Capacity;
        public int LengthOf(int sequence) => device.LengthOf(sequence);
        public int LogitRowsOf(int sequence) => device.LogitRowsOf(sequence);
        public long? OwnThreadsAllocatedBytes => null; // kernels run on ILGPU's threads or the GPU
        public void Reset(int sequence) => device.Reset(sequence);
        public void Forward(ReadOnlySpan<int> tokens, ReadOnlySpan<SequenceFeed> feeds) => device.Forward(tokens, feeds);

        public void Sample(int sequence, in SamplingSettings settings, ulong seed, int step, Span<int> destination)
            => device.Sample(sequence, new SamplingArgs
            {
                Greedy = settings.Greedy ? 1 : 0, Temperature = settings.Temperature, TopK = settings.TopK, TopP = settings.TopP,
                Seed = seed, Step = step,
            }, destination);

        public void CopyLogits(int sequence, Span<float> destination) => device.CopyLogits(sequence, destination);
        public bool TryEnableStepGraphs() => device.TryEnableCudaGraphs();
        public void UseFusedLayers(bool on) => device.FusedLayers = on;
        public bool TryUseTensorCoreSteps()
        {
            device.TensorCoreSteps = true;
            return true;
        }
        public void Dispose() => device.Dispose();
    }
}
