using ILGPU;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Kernels.Ops;

public struct MatMulArgs
{
    /// <summary>C[M, N] (=|+=) A[M, K]·W[N, K]ᵀ + bias; A rows Lda apart, C rows Ldc apart.</summary>
    public int M, N, K, Lda, Ldc;
    /// <summary>1: add into C (residual add fused into the projection); 0: overwrite.</summary>
    public int Accumulate;
    /// <summary>1: apply GELU (erf form) to the result before storing.</summary>
    public int Gelu;
    public int HasBias;
    /// <summary>
    /// The step GEMM only (<see cref="StepMatMulKernel"/>): K split over this many warps of a group, their sums added in
    /// split order (0 or 1: not split). Changes the bits (another order of the sum), so it must be the same for every
    /// launch whose rows should agree.
    /// </summary>
    public int KSplits;

    /// <summary>
    /// The epilogue every matmul kernel shares: output (m, n), if inside M x N, gets + bias, GELU, and is stored or
    /// added to C (the residual).
    /// </summary>
    public readonly void Store(ArrayView<float> c, ArrayView<float> bias, int m, int n, float value)
    {
        if (m >= M || n >= N) return;
        if (HasBias != 0) value += bias[n];
        if (Gelu != 0) value = DeviceMath.Gelu(value);
        long at = (long)m * Ldc + n;
        c[at] = Accumulate != 0 ? c[at] + value : value;
    }
}

/// <summary>
/// The linear layers: C = A·Wᵀ (+ bias, GELU, residual) with W in PyTorch's [out, in] layout, fp32
/// accumulation whatever the weight storage. A group computes a <see cref="TileM"/> x <see cref="TileN"/>
/// output tile: per step of <see cref="TileK"/> it stages A rows and W rows in shared memory (coalesced:
/// consecutive threads read consecutive k), then each thread accumulates the outputs it owns
/// (tile / group size of them, so any power-of-two group from 32 to 512 works). With M ≤ 16 (an NBP
/// step) every weight element is read from global memory once.
/// Grid: ceil(N/TileN) x ceil(M/TileM) groups, flattened.
/// </summary>
public static class MatMulKernel
{
    public const int TileM = 16, TileN = 32, TileK = 64;
    /// <summary>Row stride of the staged tiles in shared memory (avoids bank conflicts).</summary>
    public const int Pad = TileK + 1;

    /// <summary>The launch for C[m, n]: ceil(n/TileN) x ceil(m/TileM) groups of <paramref name="groupSize"/> threads.</summary>
    public static KernelConfig Launch(int m, int n, int groupSize) =>
        new(((n + TileN - 1) / TileN) * ((m + TileM - 1) / TileM), groupSize);

    /// <summary>
    /// acc[o] += Σ_p aTile[r, p]·wTile[col, p] over one staged k step for each output the thread owns
    /// (output e = thread + o·groupSize, row e / TileN, column e % TileN: consecutive threads, consecutive
    /// columns). Shared by the matmul and the tokenizer's implicit-GEMM conv.
    /// </summary>
    public static void AccumulateTile(ArrayView<float> aTile, ArrayView<float> wTile, ArrayView<float> acc, int owned)
    {
        for (int o = 0; o < owned; o++)
        {
            int e = Group.IdxX + o * Group.DimX, r = e / TileN, col = e % TileN;
            float sum = acc[o];
            for (int p = 0; p < TileK; p++) sum += aTile[r * Pad + p] * wTile[col * Pad + p];
            acc[o] = sum;
        }
    }

    /// <param name="a">[M, Lda]</param><param name="w">[N, K]</param><param name="bias">[N] (read only if HasBias)</param>
    /// <param name="c">[M, Ldc]</param>
    public static void Tiled<TW>(ArrayView<float> a, TW w, ArrayView<float> bias, ArrayView<float> c, MatMulArgs args) where TW : struct, IWeightView
    {
        var aTile = SharedMemory.Allocate<float>(TileM * Pad);
        var wTile = SharedMemory.Allocate<float>(TileN * Pad);
        // per-thread accumulators: at most TileM * TileN / 32 outputs (the smallest group is one warp)
        var acc = LocalMemory.Allocate<float>(TileM * TileN / 32);
        int tilesN = (args.N + TileN - 1) / TileN;
        int n0 = (Grid.IdxX % tilesN) * TileN, m0 = (Grid.IdxX / tilesN) * TileM;
        int threads = Group.DimX, t = Group.IdxX;
        int owned = TileM * TileN / threads;
        for (int o = 0; o < owned; o++) acc[o] = 0;

        for (int k0 = 0; k0 < args.K; k0 += TileK)
        {
            for (int e = t; e < TileM * TileK; e += threads)
            {
                int r = e / TileK, k = k0 + e % TileK;
                aTile[r * Pad + e % TileK] = m0 + r < args.M && k < args.K ? a[(long)(m0 + r) * args.Lda + k] : 0f;
            }
            for (int e = t; e < TileN * TileK; e += threads)
            {
                int r = e / TileK, k = k0 + e % TileK;
                wTile[r * Pad + e % TileK] = n0 + r < args.N && k < args.K ? w.Load((long)(n0 + r) * args.K + k) : 0f;
            }
            Group.Barrier();
            AccumulateTile(aTile, wTile, acc, owned);
            Group.Barrier();
        }
        for (int o = 0; o < owned; o++)
        {
            int e = t + o * threads;
            args.Store(c, bias, m0 + e / TileN, n0 + e % TileN, acc[o]);
        }
    }
}
