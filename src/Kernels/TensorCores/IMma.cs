using ILGPU;

namespace NbpEngine.Kernels.TensorCores;

/// <summary>
/// The tensor-core instruction behind a small interface, so one kernel body runs on CUDA (mma.sync) and, lane for
/// lane, on ILGPU's CPU accelerator (an emulation of the fragment layout). Kernels are generic over a struct
/// implementing it, which ILGPU specialises; nothing else in a kernel knows which one it got.
/// </summary>
public interface IMma
{
    /// <summary>Two fp32 values rounded to fp16 (nearest, ties to even), <paramref name="low"/> in the low half.</summary>
    uint Pack(float low, float high);

    /// <summary>
    /// Shared memory the implementation needs for up to <see cref="EmulatedMma.MaxWarps"/> warps (the emulation's
    /// exchange); call once, at the top of the kernel. The empty view when none is needed.
    /// </summary>
    ArrayView<uint> Scratch();

    /// <summary>
    /// acc += A·B over one 32-deep k slice of the warp's 32 x 32 tile; warp-collective (every lane of the warp calls
    /// it together). Only the first <paramref name="columnFragments"/> 8-column quarters are computed (warp-uniform;
    /// the rest of the tile lies past the output's last column). <paramref name="slice"/> is the slice's index.
    /// </summary>
    void Multiply(ref WarpSlice f, ref WarpAccumulators acc, int columnFragments, ArrayView<uint> scratch, int slice);
}
