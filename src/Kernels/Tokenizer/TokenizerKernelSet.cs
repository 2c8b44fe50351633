using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>The tokenizer's kernels, compiled once per accelerator.</summary>
public sealed class TokenizerKernelSet
{
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv3dArgs> Conv3d { get; }
    /// <summary>The conv on tensor cores: mma.sync on CUDA, the lane-exact emulation elsewhere. Weights from <see cref="TensorCoreConv3dKernel.PackWeights"/>.</summary>
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs> TensorCoreConv3d { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, VolumeArgs, int> GroupNormSwish { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, VolumeArgs, int, int, int> Depth2Space { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, int> FsqCodes { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, int> FsqQuantize { get; }

    public TokenizerKernelSet(Accelerator accelerator)
    {
        Conv3d = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv3dArgs>(Conv3dKernel.Conv);
        TensorCoreConv3d = accelerator.AcceleratorType == AcceleratorType.Cuda
            ? accelerator.LoadKernel<ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs>(TensorCoreConv3dKernel.Conv<PtxMma>)
            : accelerator.LoadKernel<ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs>(TensorCoreConv3dKernel.Conv<EmulatedMma>);
        GroupNormSwish = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, VolumeArgs, int>(GroupNormSwishKernel.Normalize);
        Depth2Space = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, VolumeArgs, int, int, int>(Depth2SpaceKernel.Rearrange);
        FsqCodes = accelerator.LoadKernel<ArrayView<int>, ArrayView<float>, int>(FsqKernel.Codes);
        FsqQuantize = accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, int>(FsqKernel.Quantize);
    }

    /// <summary>Grid for the conv: ceil(Cout/32) x ceil(positions/16) groups.</summary>
    public static KernelConfig ConvGrid(int positions, int cout, int groupSize) =>
        new(((cout + Conv3dKernel.TileN - 1) / Conv3dKernel.TileN) * ((positions + Conv3dKernel.TileM - 1) / Conv3dKernel.TileM), groupSize);
}
