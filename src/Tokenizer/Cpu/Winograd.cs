using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NbpEngine.Runtime.Cpu;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// Winograd F(4x4, 3x3) (Lavin and Gray, 2016) over height and width for the 3x3x3 stride-1 causal convs;
/// the three time taps stay an ordinary sum, folded into the GEMM's K. Each 4x4 block of outputs of a
/// frame comes from a 6x6 input tile: per channel the tile is transformed (V = Bᵀ d B), the 36 points ξ
/// become 36 independent GEMMs M_ξ[tile, cout] = Σ_{kt, cin} V_ξ[frame t+kt-2, tile, cin] · U_ξ[kt, cin, cout]
/// with U = G g Gᵀ precomputed, and Y = Aᵀ M A gives the 16 outputs. That is 36·3 multiplies per
/// output block and channel pair instead of 16·27: 4x fewer. The transforms work on channels-last
/// vectors of 16 channels, so channel counts must be multiples of 16.
/// This file holds the fixed matrices and the weight transform; <see cref="WinogradConv"/> runs it.
/// </summary>
internal static unsafe class WinogradF43
{
    public const int Tile = 4;   // outputs per side of a tile
    public const int Alpha = 6;  // inputs per side: Tile + 3 - 1
    public const int Points = Alpha * Alpha;
    /// <summary>Channels per transform step: one Vector512; channel counts must be multiples of it.</summary>
    public const int Lanes = 16;

    /// <summary>G·(g0, g1, g2): the weight transform of one column (G is 6x3; points 0, ±1, ±2 and ∞).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void WeightColumn(double g0, double g1, double g2, double* o, int stride)
    {
        const double Sixth = 1 / 6.0, Twelfth = 1 / 12.0, TwentyFourth = 1 / 24.0;
        double even = g0 + g2;
        o[0] = 0.25 * g0;
        o[stride] = -Sixth * (even + g1);
        o[2 * stride] = -Sixth * (even - g1);
        o[3 * stride] = TwentyFourth * g0 + Twelfth * g1 + Sixth * g2;
        o[4 * stride] = TwentyFourth * g0 - Twelfth * g1 + Sixth * g2;
        o[5 * stride] = g2;
    }

    /// <summary>
    /// U_ξ for every point ξ: a [cout, 3·cin] matrix packed for the GEMM, column kt·cin + ci, from the
    /// conv weight [cout, kt=3, kh=3, kw=3, cin]. Computed in double, rounded once. Written in the packed
    /// storage order (panel, k, column) so all 36 outputs are sequential streams; panels in parallel.
    /// </summary>
    public static PackedWeights[] TransformWeights(float* weight, int cout, int cin)
    {
        var u = new PackedWeights[Points];
        for (int xi = 0; xi < Points; xi++) u[xi] = new PackedWeights(cout, 3 * cin);
        int panels = u[0].Panels;
        Parallel.For(0, panels, panel =>
        {
            double* g = stackalloc double[9];
            double* gg = stackalloc double[Alpha * 3];
            double* u6 = stackalloc double[Points];
            float** rows = stackalloc float*[Points];
            int width = Math.Min(PackedGemm.PanelWidth, cout - panel * PackedGemm.PanelWidth);
            for (int kt = 0; kt < 3; kt++)
                for (int ci = 0; ci < cin; ci++)
                {
                    for (int xi = 0; xi < Points; xi++) rows[xi] = u[xi].PanelRow(panel, kt * cin + ci);
                    for (int j = 0; j < width; j++)
                    {
                        float* taps = weight + (((long)(panel * PackedGemm.PanelWidth + j) * 3 + kt) * 9) * cin + ci;
                        for (int tap = 0; tap < 9; tap++) g[tap] = taps[(long)tap * cin];
                        for (int kw = 0; kw < 3; kw++) WeightColumn(g[kw], g[3 + kw], g[6 + kw], gg + kw, 3); // gg = G g   (6x3)
                        for (int a = 0; a < Alpha; a++) WeightColumn(gg[a * 3], gg[a * 3 + 1], gg[a * 3 + 2], u6 + a * Alpha, 1); // U = gg Gᵀ
                        for (int xi = 0; xi < Points; xi++) rows[xi][j] = (float)u6[xi];
                    }
                }
        });
        return u;
    }

    /// <summary>Bᵀ d for one column of six input vectors.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void InputColumn(Vector512<float> d0, Vector512<float> d1, Vector512<float> d2, Vector512<float> d3, Vector512<float> d4, Vector512<float> d5,
        float* o, long stride)
    {
        var four = Vector512.Create(4f);
        var five = Vector512.Create(5f);
        var two = Vector512.Create(2f);
        var d4md2 = d4 - d2;
        Vector512.Store(Vector512.FusedMultiplyAdd(four, d0, d4) - five * d2, o);
        Vector512.Store(Vector512.FusedMultiplyAdd(-four, d1 + d2, d3 + d4), o + stride);
        Vector512.Store(Vector512.FusedMultiplyAdd(four, d1 - d2, d4 - d3), o + 2 * stride);
        Vector512.Store(Vector512.FusedMultiplyAdd(two, d3 - d1, d4md2), o + 3 * stride);
        Vector512.Store(Vector512.FusedMultiplyAdd(two, d1 - d3, d4md2), o + 4 * stride);
        Vector512.Store(Vector512.FusedMultiplyAdd(four, d1, d5) - five * d3, o + 5 * stride);
    }

    /// <summary>Aᵀ m for one column of six GEMM-output vectors (4 results).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void OutputColumn(Vector512<float> m0, Vector512<float> m1, Vector512<float> m2, Vector512<float> m3, Vector512<float> m4, Vector512<float> m5,
        out Vector512<float> o0, out Vector512<float> o1, out Vector512<float> o2, out Vector512<float> o3)
    {
        var s12 = m1 + m2; var d12 = m1 - m2;
        var s34 = m3 + m4; var d34 = m3 - m4;
        o0 = m0 + s12 + s34;
        o1 = Vector512.FusedMultiplyAdd(Vector512.Create(2f), d34, d12);
        o2 = Vector512.FusedMultiplyAdd(Vector512.Create(4f), s34, s12);
        o3 = Vector512.FusedMultiplyAdd(Vector512.Create(8f), d34, d12) + m5;
    }
}
