using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.TensorCores;

/// <summary>
/// mma.sync.m16n8k16 (fp16 in, fp32 accumulation) emulated lane for lane on ILGPU's CPU accelerator: each lane
/// publishes the registers it would hand to the instruction in shared memory, and computes its own accumulator
/// registers from the operand values held by the lanes the PTX fragment layout names. A kernel that puts a value in
/// the wrong register or lane gets a wrong product here, exactly as it would on the GPU, so the parity suite tests
/// the tensor-core kernels' indexing without a GPU. One exchange per 32-deep slice (two buffers alternate by slice,
/// so one warp barrier suffices: a lane can only overwrite a buffer after every lane has passed the barrier of the
/// slice in between, that is, after it finished reading).
/// </summary>
public struct EmulatedMma : IMma
{
    // a lane's operand values per slice: 4 A fragments x 4 registers x 2 halves, then 8 B fragments x 2 x 2, as fp32
    // (widened once by the publishing lane, so the 32 readers of a value do not each convert it)
    private const int Values = 64, BValues = 32;
    /// <summary>Most warps a group may have: the step GEMM's groups (<see cref="Ops.StepMmaKernel.MaxWarps"/>), twice the prefill tile's.</summary>
    public const int MaxWarps = 8;

    public readonly uint Pack(float low, float high) => DeviceMath.HalfBits(low) | (DeviceMath.HalfBits(high) << 16);

    /// <summary>Float slots as uint words (the interface's type); two buffers x warps x lanes x 64.</summary>
    public readonly ArrayView<uint> Scratch() => SharedMemory.Allocate<uint>(2 * MaxWarps * 32 * Values);

    public readonly void Multiply(ref WarpSlice f, ref WarpAccumulators acc, int columnFragments, ArrayView<uint> scratch, int slice)
    {
        var values = scratch.Cast<float>();
        int warps = Group.DimX / 32, warp = Group.IdxX / 32, lane = Group.IdxX % 32;
        int warpBase = ((slice & 1) * warps + warp) * 32 * Values;
        int at = warpBase + lane * Values;
        Publish(values, at, f.A00); Publish(values, at + 8, f.A01); Publish(values, at + 16, f.A10); Publish(values, at + 24, f.A11);
        Publish(values, at + BValues, f.B00); Publish(values, at + BValues + 4, f.B01); Publish(values, at + BValues + 8, f.B10); Publish(values, at + BValues + 12, f.B11);
        Publish(values, at + BValues + 16, f.B20); Publish(values, at + BValues + 20, f.B21); Publish(values, at + BValues + 24, f.B30); Publish(values, at + BValues + 28, f.B31);
        Warp.Barrier();
        int g = lane / 4, t = lane % 4;
        acc.C00 = Product(acc.C00, values, warpBase, 0, 0, g, t); acc.C10 = Product(acc.C10, values, warpBase, 1, 0, g, t);
        if (columnFragments > 1) { acc.C01 = Product(acc.C01, values, warpBase, 0, 1, g, t); acc.C11 = Product(acc.C11, values, warpBase, 1, 1, g, t); }
        if (columnFragments > 2) { acc.C02 = Product(acc.C02, values, warpBase, 0, 2, g, t); acc.C12 = Product(acc.C12, values, warpBase, 1, 2, g, t); }
        if (columnFragments > 3) { acc.C03 = Product(acc.C03, values, warpBase, 0, 3, g, t); acc.C13 = Product(acc.C13, values, warpBase, 1, 3, g, t); }
    }

    private static void Publish(ArrayView<float> values, int at, AFragment a)
    {
        Publish(values, at, a.R0); Publish(values, at + 2, a.R1); Publish(values, at + 4, a.R2); Publish(values, at + 6, a.R3);
    }

    private static void Publish(ArrayView<float> values, int at, BFragment b)
    {
        Publish(values, at, b.R0); Publish(values, at + 2, b.R1);
    }

    private static void Publish(ArrayView<float> values, int at, uint register)
    {
        values[at] = DeviceMath.HalfBitsToFloat(register & 0xFFFFu);
        values[at + 1] = DeviceMath.HalfBitsToFloat(register >> 16);
    }

    /// <summary>Lane (g, t)'s accumulator registers of fragment (m, n) after both 16-deep halves of the slice.</summary>
    private static CFragment Product(CFragment c, ArrayView<float> values, int warpBase, int m, int n, int g, int t)
    {
        float d0 = c.R0, d1 = c.R1, d2 = c.R2, d3 = c.R3;
        for (int half = 0; half < 2; half++)
        {
            // A rows g (registers R0, R2) and g+8 (R1, R3) are held by lanes 4g + pair; B column 2t by lanes 8t + pair
            // (R0 for k < 8, R1 above), column 2t+1 by the four lanes after those
            int aBase = warpBase + 4 * g * Values + (m * 2 + half) * 8, bBase = warpBase + 8 * t * Values + BValues + (n * 2 + half) * 4;
            for (int k = 0; k < 16; k++)
            {
                int pair = (k % 8) / 2, upper = k % 2, high = k / 8;
                int aAt = aBase + pair * Values + 4 * high + upper, bAt = bBase + pair * Values + 2 * high + upper;
                float top = values[aAt], bottom = values[aAt + 2], left = values[bAt], right = values[bAt + 4 * Values];
                d0 += top * left; d1 += top * right; d2 += bottom * left; d3 += bottom * right;
            }
        }
        return new CFragment { R0 = d0, R1 = d1, R2 = d2, R3 = d3 };
    }
}
