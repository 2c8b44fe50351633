using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using NbpEngine.Core;
using NbpEngine.Runtime.Backends;
using NbpEngine.Runtime.Cpu;
using NbpEngine.Tokenizer;

namespace NbpEngine.Pipeline;

/// <summary>Where and how a pipeline runs; fixed when it is loaded.</summary>
public sealed record PipelineOptions
{
    /// <summary>Transformer and tokenizer backend: Auto = CUDA when a device is present, else the CPU.</summary>
    public BackendKind Backend { get; init; } = BackendKind.Auto;
    /// <summary>ILGPU backends: how the weight matrices are stored on the device. Null: fp16 on CUDA, fp32 on the ILGPU CPU accelerator.</summary>
    public WeightStorage? DeviceWeights { get; init; }
    /// <summary>
    /// ILGPU backends: prefill matmuls and the tokenizer's convs on tensor cores (fp16-rounded operands, fp32
    /// accumulation). Null: on for CUDA, off for the ILGPU CPU accelerator; true or false forces it.
    /// </summary>
    public bool? TensorCores { get; init; }
    /// <summary>CUDA backend: each generation step as one CUDA graph launch (<see cref="NbpEngine.Runtime.Api.SessionOptions.CudaGraphs"/>; off by default until measured).</summary>
    public bool CudaGraphs { get; init; }
    /// <summary>CPU threads; default all cores.</summary>
    public int? Threads { get; init; }
    /// <summary>CPU backend: packed copies of the matrices (faster steps, one more copy in memory) or the loaded ones in place.</summary>
    public CpuWeightLayout CpuWeights { get; init; } = CpuWeightLayout.Packed;
    /// <summary>Scan the transformer's weights for NaN and infinities when loading.</summary>
    public bool CheckFinite { get; init; } = true;
    /// <summary>Replaces the checkpoint's hyper-parameters (MODEL.md §2).</summary>
    public ModelConfigOverrides Overrides { get; init; } = new();
    /// <summary>The CPU tokenizer's 3x3x3 conv algorithm (the device kernels have one).</summary>
    public ConvAlgorithm Conv { get; init; } = ConvAlgorithm.Auto;
    public ILoggerFactory LoggerFactory { get; init; } = NullLoggerFactory.Instance;

    internal int ThreadCount => Threads ?? Environment.ProcessorCount;
}
