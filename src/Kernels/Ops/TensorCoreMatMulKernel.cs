using ILGPU;
using ILGPU.Runtime.Cuda;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Ops;

/// <summary>
/// C = A·Wᵀ (+ bias, GELU, residual) on tensor cores, for prefill shapes (many rows). Operands are
/// rounded to fp16, products accumulate in fp32: results differ from the fp32 kernel by fp16
/// rounding of the activations (stated tolerance in the parity tests), so it is opt-in.
/// Each warp owns a 16 x 32 output tile: per 16-deep k step the group stages A and W in shared memory
/// and every warp issues four mma.sync.m16n8k16.row.col.f32.f16.f16.f32 (n sub-tiles of 8).
/// Fragment layout (PTX ISA, m16n8k16, .f16): g = lane / 4, t = lane % 4;
/// A regs {a0,a1}: row g, k 2t..2t+1; {a2,a3}: row g+8; {a4,a5}: row g, k 2t+8..; {a6,a7}: row g+8, k 2t+8..;
/// B regs {b0,b1}: k 2t..2t+1, col g; {b2,b3}: k 2t+8..; C/D: c0,c1 row g cols 2t, 2t+1; c2,c3 row g+8.
/// Without CudaAsm (the CPU accelerator) the plain branch computes the same fragment outputs from the
/// same fp16-rounded operands in fp32, so both branches agree up to accumulation order.
/// Grid: ceil(N/32) x ceil(M/(16·warps)) groups of warps x 32 threads, flattened.
/// </summary>
public static class TensorCoreMatMulKernel
{
    public const int WarpTileM = 16, TileN = 32, StepK = 16, MaxWarps = 4;
    private const int Pad = StepK + 2;

    /// <summary>Warps per group for a device whose row kernels use <paramref name="groupSize"/> threads.</summary>
    public static int Warps(int groupSize) => Math.Min(MaxWarps, groupSize / 32);

    /// <summary>The launch for C[m, n]: ceil(n/32) x ceil(m/(16·warps)) groups of warps x 32 threads.</summary>
    public static KernelConfig Launch(int m, int n, int warps) =>
        new(((n + TileN - 1) / TileN) * ((m + WarpTileM * warps - 1) / (WarpTileM * warps)), warps * 32);

    public static void TensorCore<TW>(ArrayView<float> a, TW w, ArrayView<float> bias, ArrayView<float> c, MatMulArgs args) where TW : struct, IWeightView
    {
        var aTile = SharedMemory.Allocate<float>(MaxWarps * WarpTileM * Pad);
        var wTile = SharedMemory.Allocate<float>(TileN * Pad);
        int warps = Group.DimX / 32, warp = Group.IdxX / 32, lane = Group.IdxX % 32;
        int tilesN = (args.N + TileN - 1) / TileN;
        int n0 = (Grid.IdxX % tilesN) * TileN, m0 = (Grid.IdxX / tilesN) * WarpTileM * warps;
        int g = lane / 4, t = lane % 4;
        // accumulators: [n sub-tile][c0..c3]
        float d00 = 0, d01 = 0, d02 = 0, d03 = 0, d10 = 0, d11 = 0, d12 = 0, d13 = 0;
        float d20 = 0, d21 = 0, d22 = 0, d23 = 0, d30 = 0, d31 = 0, d32 = 0, d33 = 0;
        for (int k0 = 0; k0 < args.K; k0 += StepK)
        {
            for (int e = Group.IdxX; e < warps * WarpTileM * StepK; e += Group.DimX)
            {
                int r = e / StepK, k = k0 + e % StepK, m = m0 + r;
                aTile[r * Pad + e % StepK] = DeviceMath.RoundToHalf(m < args.M && k < args.K ? a[(long)m * args.Lda + k] : 0f);
            }
            for (int e = Group.IdxX; e < TileN * StepK; e += Group.DimX)
            {
                int r = e / StepK, k = k0 + e % StepK, n = n0 + r;
                wTile[r * Pad + e % StepK] = DeviceMath.RoundToHalf(n < args.N && k < args.K ? w.Load((long)n * args.K + k) : 0f);
            }
            Group.Barrier();
            int ar = warp * WarpTileM;
            if (CudaAsm.IsSupported)
            {
                uint a0 = Pack(aTile, (ar + g) * Pad + 2 * t), a1 = Pack(aTile, (ar + g + 8) * Pad + 2 * t);
                uint a2 = Pack(aTile, (ar + g) * Pad + 2 * t + 8), a3 = Pack(aTile, (ar + g + 8) * Pad + 2 * t + 8);
                Mma(a0, a1, a2, a3, Pack(wTile, g * Pad + 2 * t), Pack(wTile, g * Pad + 2 * t + 8), ref d00, ref d01, ref d02, ref d03);
                Mma(a0, a1, a2, a3, Pack(wTile, (8 + g) * Pad + 2 * t), Pack(wTile, (8 + g) * Pad + 2 * t + 8), ref d10, ref d11, ref d12, ref d13);
                Mma(a0, a1, a2, a3, Pack(wTile, (16 + g) * Pad + 2 * t), Pack(wTile, (16 + g) * Pad + 2 * t + 8), ref d20, ref d21, ref d22, ref d23);
                Mma(a0, a1, a2, a3, Pack(wTile, (24 + g) * Pad + 2 * t), Pack(wTile, (24 + g) * Pad + 2 * t + 8), ref d30, ref d31, ref d32, ref d33);
            }
            else
            {
                Plain(aTile, wTile, ar, 0, g, t, ref d00, ref d01, ref d02, ref d03);
                Plain(aTile, wTile, ar, 8, g, t, ref d10, ref d11, ref d12, ref d13);
                Plain(aTile, wTile, ar, 16, g, t, ref d20, ref d21, ref d22, ref d23);
                Plain(aTile, wTile, ar, 24, g, t, ref d30, ref d31, ref d32, ref d33);
            }
            Group.Barrier();
        }
        int row = m0 + warp * WarpTileM + g;
        Store(c, bias, args, row, n0 + 2 * t, d00, d01, d02, d03);
        Store(c, bias, args, row, n0 + 8 + 2 * t, d10, d11, d12, d13);
        Store(c, bias, args, row, n0 + 16 + 2 * t, d20, d21, d22, d23);
        Store(c, bias, args, row, n0 + 24 + 2 * t, d30, d31, d32, d33);
    }

    /// <summary>Two consecutive fp32 values (already fp16-exact) as one .f16x2 register, lower index in the lower half.</summary>
    private static uint Pack(ArrayView<float> tile, int at)
    {
        CudaAsm.Emit("cvt.rn.f16x2.f32 %0, %1, %2;", out uint packed, tile[at + 1], tile[at]);
        return packed;
    }

    private static void Mma(uint a0, uint a1, uint a2, uint a3, uint b0, uint b1, ref float d0, ref float d1, ref float d2, ref float d3)
    {
        Ref<float> c0 = d0, c1 = d1, c2 = d2, c3 = d3;
        Input<uint> ia0 = a0, ia1 = a1, ia2 = a2, ia3 = a3, ib0 = b0, ib1 = b1;
        CudaAsm.EmitRef(
            "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};",
            ref c0, ref c1, ref c2, ref c3, ref ia0, ref ia1, ref ia2, ref ia3, ref ib0, ref ib1);
        d0 = c0.Value; d1 = c1.Value; d2 = c2.Value; d3 = c3.Value;
    }

    /// <summary>The fragment outputs of one m16n8k16 step without tensor cores.</summary>
    private static void Plain(ArrayView<float> aTile, ArrayView<float> wTile, int ar, int nSub, int g, int t, ref float d0, ref float d1, ref float d2, ref float d3)
    {
        for (int k = 0; k < StepK; k++)
        {
            float top = aTile[(ar + g) * Pad + k], bottom = aTile[(ar + g + 8) * Pad + k];
            float w0 = wTile[(nSub + 2 * t) * Pad + k], w1 = wTile[(nSub + 2 * t + 1) * Pad + k];
            d0 += top * w0; d1 += top * w1; d2 += bottom * w0; d3 += bottom * w1;
        }
    }

    private static void Store(ArrayView<float> c, ArrayView<float> bias, MatMulArgs args, int row, int col, float v0, float v1, float v2, float v3)
    {
        args.Store(c, bias, row, col, v0);
        args.Store(c, bias, row, col + 1, v1);
        args.Store(c, bias, row + 8, col, v2);
        args.Store(c, bias, row + 8, col + 1, v3);
    }
}
