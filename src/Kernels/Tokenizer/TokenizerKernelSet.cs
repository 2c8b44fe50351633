using ILGPU;
using ILGPU.Runtime;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>The tokenizer's kernels, compiled once per accelerator.</summary>
public sealed class TokenizerKernelSet
{
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv3dArgs> Conv3d { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, VolumeArgs, int> GroupNormSwish { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<float>, VolumeArgs, int, int, int> Depth2Space { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<int>, ArrayView<float>, int> FsqCodes { get; }
    public Action<AcceleratorStream, KernelConfig, ArrayView<float>, ArrayView<int>, int> FsqQuantize { get; }

    public TokenizerKernelSet(Accelerator accelerator)
    {
        Conv3d = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, Conv3dArgs>(Conv3dKernel.Conv);
        GroupNormSwish = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, ArrayView<float>, VolumeArgs, int>(GroupNormSwishKernel.Normalize);
        Depth2Space = accelerator.LoadKernel<ArrayView<float>, ArrayView<float>, VolumeArgs, int, int, int>(Depth2SpaceKernel.Rearrange);
        FsqCodes = accelerator.LoadKernel<ArrayView<int>, ArrayView<float>, int>(FsqKernel.Codes);
        FsqQuantize = accelerator.LoadKernel<ArrayView<float>, ArrayView<int>, int>(FsqKernel.Quantize);
    }

    /// <summary>Grid for the conv: ceil(Cout/32) x ceil(positions/16) groups.</summary>
    public static KernelConfig ConvGrid(int positions, int cout, int groupSize) =>
        new(((cout + Conv3dKernel.TileN - 1) / Conv3dKernel.TileN) * ((positions + Conv3dKernel.TileM - 1) / Conv3dKernel.TileM), groupSize);
}
