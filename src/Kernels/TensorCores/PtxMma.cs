using ILGPU;
using ILGPU.Runtime.Cuda;

namespace NbpEngine.Kernels.TensorCores;

/// <summary>The real instruction: mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32, 16 per slice (CUDA only).</summary>
public struct PtxMma : IMma
{
    public readonly uint Pack(float low, float high)
    {
        CudaAsm.Emit("cvt.rn.f16x2.f32 %0, %1, %2;", out uint packed, high, low);
        return packed;
    }

    public readonly ArrayView<uint> Scratch() => default;

    public readonly void Multiply(ref WarpSlice f, ref WarpAccumulators acc, int columnFragments, ArrayView<uint> scratch, int slice)
    {
        // k half 0, then k half 1: each accumulator's two products in k order
        Mma(f.A00, f.B00, ref acc.C00); Mma(f.A10, f.B00, ref acc.C10);
        if (columnFragments > 1) { Mma(f.A00, f.B10, ref acc.C01); Mma(f.A10, f.B10, ref acc.C11); }
        if (columnFragments > 2) { Mma(f.A00, f.B20, ref acc.C02); Mma(f.A10, f.B20, ref acc.C12); }
        if (columnFragments > 3) { Mma(f.A00, f.B30, ref acc.C03); Mma(f.A10, f.B30, ref acc.C13); }
        Mma(f.A01, f.B01, ref acc.C00); Mma(f.A11, f.B01, ref acc.C10);
        if (columnFragments > 1) { Mma(f.A01, f.B11, ref acc.C01); Mma(f.A11, f.B11, ref acc.C11); }
        if (columnFragments > 2) { Mma(f.A01, f.B21, ref acc.C02); Mma(f.A11, f.B21, ref acc.C12); }
        if (columnFragments > 3) { Mma(f.A01, f.B31, ref acc.C03); Mma(f.A11, f.B31, ref acc.C13); }
    }

    private static void Mma(AFragment a, BFragment b, ref CFragment c)
    {
        Ref<float> c0 = c.R0, c1 = c.R1, c2 = c.R2, c3 = c.R3;
        Input<uint> a0 = a.R0, a1 = a.R1, a2 = a.R2, a3 = a.R3, b0 = b.R0, b1 = b.R1;
        CudaAsm.EmitRef(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
            ref c0, ref c1, ref c2, ref c3, ref a0, ref a1, ref a2, ref a3, ref b0, ref b1);
        c.R0 = c0.Value; c.R1 = c1.Value; c.R2 = c2.Value; c.R3 = c3.Value;
    }
}
