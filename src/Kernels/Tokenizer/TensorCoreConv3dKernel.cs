using ILGPU;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>
/// The input volume as the implicit GEMM's A operand: row m is output position (to, ho, wo), column k is
/// (kt, kh, kw, ci) with ci fastest, read from the input with the causal replicate padding of TOKENIZER.md (2·(kt/2)
/// frames in front, kh/2 and kw/2 on both sides, edges repeated). When Cin is a multiple of 8, the 8 values of a load
/// share one tap and sit side by side: one tap decode and two 16-byte loads; otherwise (the 3-channel encoder input,
/// the 6-channel decoder input) each value is decoded alone. 32-bit indices: the host keeps volumes under 2^31.
/// </summary>
public struct ConvInputSource : IOperandSource
{
    public ArrayView<float> Data;
    public ArrayView<Float4> Vectors;
    public Conv3dArgs Args;

    public readonly bool Packed => false;
    public readonly Bits128 LoadPacked8(int row, int k) => default;

    public readonly Vec8 Load8(int m, int k)
    {
        var a = Args;
        int depth = a.KT * a.KH * a.KW * a.Cin;
        if (m >= a.To * a.Ho * a.Wo || k >= depth) return default;
        int wo = m % a.Wo, rest = m / a.Wo;
        int t0 = (rest / a.Ho) * a.ST - 2 * (a.KT / 2), h0 = (rest % a.Ho) * a.SH - a.KH / 2, w0 = wo * a.SW - a.KW / 2;
        if (a.Cin % 8 == 0)
        {
            int at = Address(t0, h0, w0, k) / 4;
            Float4 p = Vectors[at], q = Vectors[at + 1];
            return new Vec8 { V0 = p.X, V1 = p.Y, V2 = p.Z, V3 = p.W, V4 = q.X, V5 = q.Y, V6 = q.Z, V7 = q.W };
        }
        return new Vec8
        {
            V0 = At(t0, h0, w0, k, depth), V1 = At(t0, h0, w0, k + 1, depth), V2 = At(t0, h0, w0, k + 2, depth), V3 = At(t0, h0, w0, k + 3, depth),
            V4 = At(t0, h0, w0, k + 4, depth), V5 = At(t0, h0, w0, k + 5, depth), V6 = At(t0, h0, w0, k + 6, depth), V7 = At(t0, h0, w0, k + 7, depth),
        };
    }

    private readonly float At(int t0, int h0, int w0, int k, int depth) => k < depth ? Data[Address(t0, h0, w0, k)] : 0f;

    /// <summary>The input index of column k for the position whose window starts at (t0, h0, w0).</summary>
    private readonly int Address(int t0, int h0, int w0, int k)
    {
        var a = Args;
        int tap = k / a.Cin, ci = k - tap * a.Cin;
        int kw = tap % a.KW, kh = (tap / a.KW) % a.KH, kt = tap / (a.KW * a.KH);
        int ti = t0 + kt < 0 ? 0 : t0 + kt;
        int hi = h0 + kh < 0 ? 0 : h0 + kh >= a.H ? a.H - 1 : h0 + kh;
        int wi = w0 + kw < 0 ? 0 : w0 + kw >= a.W ? a.W - 1 : w0 + kw;
        return ((ti * a.H + hi) * a.W + wi) * a.Cin + ci;
    }
}

/// <summary>
/// CausalConv3d as an implicit GEMM on tensor cores (the shared main loop of <see cref="MmaTile"/>): positions x
/// (taps·Cin) times the weights, which the host rounds to fp16 once and packs [Cout, depth rounded up to 32]
/// (<see cref="PackWeights"/>). Activations are rounded to fp16 as they are staged; products accumulate in fp32.
/// Epilogue: + bias, optional add into the output (the residual), optional Depth2Space (<see cref="Conv3dArgs.BT"/>).
/// A 3-channel output runs the narrow layout (all warps along positions; 3 of a warp's 4 column fragments skipped).
/// Grid: <see cref="MmaTile.Launch"/>(positions, Cout, warps).
/// </summary>
public static class TensorCoreConv3dKernel
{
    public static void Conv<TMma>(ArrayView<float> x, ArrayView<Float4> x4, ArrayView<Bits128> weights, ArrayView<float> bias, ArrayView<float> y, Conv3dArgs a)
        where TMma : struct, IMma
    {
        int positions = a.To * a.Ho * a.Wo, depth = a.KT * a.KH * a.KW * a.Cin;
        MmaTile.GroupOrigin(a.Cout, out int m0, out int n0);
        var input = new ConvInputSource { Data = x, Vectors = x4, Args = a };
        var w = new PackedHalfSource { Units = weights, Rows = a.Cout, UnitsPerRow = UnitsPerRow(depth) };
        var acc = MmaTile.Multiply<TMma, ConvInputSource, PackedHalfSource>(input, w, depth, m0, n0, a.Cout);
        MmaTile.LaneOrigin(a.Cout, m0, n0, out int row, out int column);
        Store(y, bias, a, positions, row, column, acc.C00); Store(y, bias, a, positions, row, column + 8, acc.C01);
        Store(y, bias, a, positions, row, column + 16, acc.C02); Store(y, bias, a, positions, row, column + 24, acc.C03);
        Store(y, bias, a, positions, row + 16, column, acc.C10); Store(y, bias, a, positions, row + 16, column + 8, acc.C11);
        Store(y, bias, a, positions, row + 16, column + 16, acc.C12); Store(y, bias, a, positions, row + 16, column + 24, acc.C13);
    }

    /// <summary>16-byte units per packed weight row: the depth rounded up to a whole 32-deep slice.</summary>
    public static int UnitsPerRow(int depth) => (depth + MmaTile.SliceK - 1) / MmaTile.SliceK * (MmaTile.SliceK / 8);

    /// <summary>Weights [Cout, depth] (fp32, the CPU tokenizer's [cout, kt, kh, kw, cin]) as fp16 bits, rows zero-padded to whole slices.</summary>
    public static ushort[] PackWeights(ReadOnlySpan<float> weights, int cout, int depth)
    {
        int stride = UnitsPerRow(depth) * 8;
        var packed = new ushort[(long)cout * stride];
        for (int n = 0; n < cout; n++)
            for (int k = 0; k < depth; k++) packed[(long)n * stride + k] = BitConverter.HalfToUInt16Bits((System.Half)weights[n * depth + k]);
        return packed;
    }

    private static void Store(ArrayView<float> y, ArrayView<float> bias, Conv3dArgs a, int positions, int row, int column, CFragment c)
    {
        Store(y, bias, a, positions, row, column, c.R0);
        Store(y, bias, a, positions, row, column + 1, c.R1);
        Store(y, bias, a, positions, row + 8, column, c.R2);
        Store(y, bias, a, positions, row + 8, column + 1, c.R3);
    }

    private static void Store(ArrayView<float> y, ArrayView<float> bias, Conv3dArgs a, int positions, int m, int n, float value)
    {
        if (m >= positions || n >= a.Cout) return;
        long at = a.OutputIndex(m, n);
        if (at < 0) return;
        value += bias[n];
        y[at] = a.Accumulate != 0 ? y[at] + value : value;
    }
}
