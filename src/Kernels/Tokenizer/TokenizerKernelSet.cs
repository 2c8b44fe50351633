using NbpEngine.Core;
using ILGPU;
using ILGPU.Runtime;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>The tokenizer's kernels, compiled once per accelerator.</summary>
public sealed class TokenizerKernelSet
{
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv3dArgs> Conv3d { get; }
    private readonly Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs> _windowConv, _gatherConv;
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, VolumeArgs, int> GroupNormSwish { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, int, FsqLevels> FsqCodes { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, int, FsqLevels> FsqQuantize { get; }

    public TokenizerKernelSet(Accelerator accelerator)
    {
        Conv3d = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv3dArgs>(Conv3dKernel.Conv);
        bool cuda = accelerator.AcceleratorType == AcceleratorType.Cuda;
        _windowConv = cuda ? LoadConv<PtxMma, ConvWindowSource>(accelerator) : LoadConv<EmulatedMma, ConvWindowSource>(accelerator);
        _gatherConv = cuda ? LoadConv<PtxMma, ConvGatherSource>(accelerator) : LoadConv<EmulatedMma, ConvGatherSource>(accelerator);
        GroupNormSwish = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, VolumeArgs, int>(GroupNormSwishKernel.Normalize);
        FsqCodes = accelerator.LoadKernel<ArrayView<int>, ArrayView<float>, int, FsqLevels>(FsqKernel.Codes);
        FsqQuantize = accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, int, FsqLevels>(FsqKernel.Quantize);
    }

    /// <summary>
    /// The conv on tensor cores for an input of <paramref name="cin"/> channels: mma.sync on CUDA, the lane-exact
    /// emulation elsewhere; the windowed input (16-byte loads, no divisions in the steady state) when Cin is a multiple
    /// of 8. Weights from <see cref="TensorCoreConv3dKernel.PackWeights"/>; grid <see cref="MmaTile.Launch"/>.
    /// </summary>
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs> TensorCoreConv3d(int cin) =>
        cin % 8 == 0 ? _windowConv : _gatherConv;

    private static Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs> LoadConv<TMma, TInput>(Accelerator accelerator)
        where TMma : struct, IMma where TInput : struct, IConvInput =>
        accelerator.LoadKernel<ArrayView<float>, ArrayView<Float4>, ArrayView<Bits128>, ArrayView<float>, ArrayView<float>, Conv3dArgs>(TensorCoreConv3dKernel.Conv<TMma, TInput>);

    /// <summary>Grid for the conv: ceil(Cout/32) x ceil(positions/16) groups.</summary>
    public static KernelConfig ConvGrid(int positions, int cout, int groupSize) =>
        new(((cout + Conv3dKernel.TileN - 1) / Conv3dKernel.TileN) * ((positions + Conv3dKernel.TileM - 1) / Conv3dKernel.TileM), groupSize);
}
