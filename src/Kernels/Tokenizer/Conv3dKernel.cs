using ILGPU;
using ILGPU.Algorithms;
using NbpEngine.Kernels.Ops;

namespace NbpEngine.Kernels.Tokenizer;

public struct Conv3dArgs
{
    /// <summary>Input [T, H, W, Cin] and output [To, Ho, Wo, Cout], channels-last.</summary>
    public int T, H, W, Cin, To, Ho, Wo, Cout;
    public int KT, KH, KW, ST, SH, SW;
    /// <summary>1: add into the output (the residual add of a ResidualUnit).</summary>
    public int Accumulate;
    /// <summary>
    /// Depth2Space factors fused into the store (0 = none): output channel ((it·BH + ih)·BW + iw)·c + o of position
    /// (t, h, w) goes to (t·BT + it - (BT-1), h·BH + ih, w·BW + iw, o) of a [To·BT-(BT-1), Ho·BH, Wo·BW, c] volume,
    /// the first BT-1 frames dropped (the CPU tokenizer's Depth2Space, without a pass over the volume).
    /// </summary>
    public int BT, BH, BW;

    /// <summary>Where output (position m, channel n) is stored; -1 for a frame Depth2Space drops.</summary>
    public readonly long OutputIndex(int m, int n)
    {
        if (BT == 0) return (long)m * Cout + n;
        int c = Cout / (BT * BH * BW), o = n % c, sub = n / c;
        int iw = sub % BW, ih = (sub / BW) % BH, it = sub / (BW * BH);
        int w = m % Wo, h = (m / Wo) % Ho, t = m / (Wo * Ho);
        int to = t * BT + it - (BT - 1);
        if (to < 0) return -1;
        return (((long)to * Ho * BH + h * BH + ih) * Wo * BW + w * BW + iw) * c + o;
    }
}

/// <summary>
/// CausalConv3d as an implicit GEMM: C[position, cout] = A[position, (kt, kh, kw, cin)] · Wᵀ + bias, where
/// A's elements are read straight from the input volume with the causal replicate padding of
/// TOKENIZER.md (2·(kt/2) frames in front, kh/2 and kw/2 on both sides, edges repeated); no im2col
/// buffer exists anywhere. Weights are [cout, kt, kh, kw, cin] (the CPU tokenizer's layout). Tiles and
/// staging as in the transformer's matmul: 16 positions x 32 channels per group, k in steps of 64.
/// Grid: ceil(Cout/32) x ceil(positions/16) groups, flattened; any power-of-two group size 32..512.
/// </summary>
public static class Conv3dKernel
{
    // the matmul's tiling, so both share MatMulKernel.AccumulateTile
    public const int TileM = MatMulKernel.TileM, TileN = MatMulKernel.TileN, TileK = MatMulKernel.TileK;
    private const int Pad = MatMulKernel.Pad;

    public static void Conv(ArrayView<float> x, ArrayView<float> weight, ArrayView<float> bias, ArrayView<float> y, Conv3dArgs a)
    {
        var aTile = SharedMemory.Allocate<float>(TileM * Pad);
        var wTile = SharedMemory.Allocate<float>(TileN * Pad);
        var acc = LocalMemory.Allocate<float>(TileM * TileN / 32);
        int positions = a.To * a.Ho * a.Wo, k = a.KT * a.KH * a.KW * a.Cin;
        int tilesN = (a.Cout + TileN - 1) / TileN;
        int n0 = (Grid.IdxX % tilesN) * TileN, m0 = (Grid.IdxX / tilesN) * TileM;
        int threads = Group.DimX, t = Group.IdxX, owned = TileM * TileN / threads;
        int padT = 2 * (a.KT / 2), padH = a.KH / 2, padW = a.KW / 2;
        for (int o = 0; o < owned; o++) acc[o] = 0;
        for (int k0 = 0; k0 < k; k0 += TileK)
        {
            for (int e = t; e < TileM * TileK; e += threads)
            {
                int r = e / TileK, kk = k0 + e % TileK, m = m0 + r;
                float value = 0;
                if (m < positions && kk < k)
                {
                    // position m -> (to, ho, wo); column kk -> (kt, kh, kw, ci)
                    int wo = m % a.Wo, ho = (m / a.Wo) % a.Ho, to = m / (a.Wo * a.Ho);
                    int ci = kk % a.Cin, tap = kk / a.Cin;
                    int kw = tap % a.KW, kh = (tap / a.KW) % a.KH, kt = tap / (a.KW * a.KH);
                    int ti = XMath.Max(0, to * a.ST + kt - padT);
                    int hi = XMath.Clamp(ho * a.SH + kh - padH, 0, a.H - 1);
                    int wi = XMath.Clamp(wo * a.SW + kw - padW, 0, a.W - 1);
                    value = x[(((long)ti * a.H + hi) * a.W + wi) * a.Cin + ci];
                }
                aTile[r * Pad + e % TileK] = value;
            }
            for (int e = t; e < TileN * TileK; e += threads)
            {
                int r = e / TileK, kk = k0 + e % TileK;
                wTile[r * Pad + e % TileK] = n0 + r < a.Cout && kk < k ? weight[(long)(n0 + r) * k + kk] : 0f;
            }
            Group.Barrier();
            MatMulKernel.AccumulateTile(aTile, wTile, acc, owned);
            Group.Barrier();
        }
        for (int o = 0; o < owned; o++)
        {
            int e = t + o * threads, m = m0 + e / TileN, n = n0 + e % TileN;
            if (m >= positions || n >= a.Cout) continue;
            long at = a.OutputIndex(m, n);
            if (at < 0) continue;
            float value = acc[o] + bias[n];
            y[at] = a.Accumulate != 0 ? y[at] + value : value;
        }
    }
}
