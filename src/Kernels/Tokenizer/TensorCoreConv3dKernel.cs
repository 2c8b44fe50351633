using ILGPU;
using NbpEngine.Kernels.Device;
using NbpEngine.Kernels.TensorCores;

namespace NbpEngine.Kernels.Tokenizer;

/// <summary>
/// The window of one output position over the input, with the causal replicate padding of TOKENIZER.md as index
/// arithmetic: it starts 2·(kt/2) frames before the position and kh/2, kw/2 before it on each side; reads outside the
/// volume take the nearest frame, row and column. Column k of the implicit GEMM is tap (kt, kh, kw) and channel ci,
/// ci fastest. Both conv input sources read through it. 32-bit indices: the host keeps volumes under 2^31 elements.
/// </summary>
public struct ConvWindow
{
    public Conv3dArgs Args;
    /// <summary>The GEMM depth, taps x Cin.</summary>
    public int Depth;
    public int T0, H0, W0;
    /// <summary>False past the last output position (the tile's padding rows).</summary>
    public bool Inside;

    public static ConvWindow For(Conv3dArgs a) => new() { Args = a, Depth = a.KT * a.KH * a.KW * a.Cin };

    /// <summary>This window moved to output position <paramref name="row"/>.</summary>
    public readonly ConvWindow At(int row)
    {
        var a = Args;
        int wo = row % a.Wo, rest = row / a.Wo;
        return new ConvWindow
        {
            Args = a, Depth = Depth, Inside = row < a.To * a.Ho * a.Wo,
            T0 = (rest / a.Ho) * a.ST - 2 * (a.KT / 2), H0 = (rest % a.Ho) * a.SH - a.KH / 2, W0 = wo * a.SW - a.KW / 2,
        };
    }

    /// <summary>Column k as its tap and channel.</summary>
    public readonly void Tap(int k, out int kt, out int kh, out int kw, out int ci)
    {
        var a = Args;
        int tap = k / a.Cin;
        ci = k - tap * a.Cin;
        kw = tap % a.KW;
        kh = (tap / a.KW) % a.KH;
        kt = tap / (a.KW * a.KH);
    }

    /// <summary>The input index of channel ci under tap (kt, kh, kw), clamped into the volume (frames only from below: causal).</summary>
    public readonly int Index(int kt, int kh, int kw, int ci)
    {
        var a = Args;
        int t = T0 + kt, h = H0 + kh, w = W0 + kw;
        int ti = t < 0 ? 0 : t;
        int hi = h < 0 ? 0 : h >= a.H ? a.H - 1 : h;
        int wi = w < 0 ? 0 : w >= a.W ? a.W - 1 : w;
        return ((ti * a.H + hi) * a.W + wi) * a.Cin + ci;
    }
}

/// <summary>The conv input as the implicit GEMM's A operand (a source the kernel binds to its arguments).</summary>
public interface IConvInput : IOperandSource
{
    void Bind(ArrayView<float> x, ArrayView<Float4> x4, Conv3dArgs args);
}

/// <summary>
/// The input volume as the A operand when Cin is a multiple of 8 (every conv of the published tokenizer but the
/// first): the 8 values of a load share a tap and sit side by side, two 16-byte loads. The cursor moves its
/// <see cref="ConvWindow"/> once (a thread's row never changes) and walks the taps by increments, so the steady state
/// divides nothing.
/// </summary>
public struct ConvWindowSource : IConvInput
{
    private ArrayView<Float4> _vectors;
    private ConvWindow _window;
    private int _row, _k, _kt, _kh, _kw, _ci, _at;

    public readonly bool Packed => false;
    public readonly Bits128 NextPacked8() => default;

    public void Bind(ArrayView<float> x, ArrayView<Float4> x4, Conv3dArgs args)
    {
        _vectors = x4;
        _window = ConvWindow.For(args);
        _row = -1;
        _k = int.MaxValue;
    }

    public void Seek(int row, int k)
    {
        if (row != _row)
        {
            _row = row;
            _window = _window.At(row);
            _k = int.MaxValue;
        }
        if (k < _k || k - _k > 32)
        {
            // a fresh start: decode the tap (the steady state below only steps forward)
            _window.Tap(k, out _kt, out _kh, out _kw, out _ci);
            _k = k;
            _at = _window.Index(_kt, _kh, _kw, _ci);
        }
        while (_k < k) Step();
    }

    public Vec8 Next8()
    {
        Vec8 v = default;
        if (_window.Inside && _k < _window.Depth)
        {
            Float4 p = _vectors[_at / 4], q = _vectors[_at / 4 + 1];
            v = new Vec8 { V0 = p.X, V1 = p.Y, V2 = p.Z, V3 = p.W, V4 = q.X, V5 = q.Y, V6 = q.Z, V7 = q.W };
        }
        Step();
        return v;
    }

    /// <summary>
    /// 8 deeper: the next 8 channels (8 further in memory), or at the end of the tap's channels the next tap (kw
    /// fastest, then kh, then kt), whose clamped address is computed anew.
    /// </summary>
    private void Step()
    {
        _k += 8;
        _ci += 8;
        _at += 8;
        if (_ci < _window.Args.Cin) return;
        _ci = 0;
        if (++_kw == _window.Args.KW)
        {
            _kw = 0;
            if (++_kh == _window.Args.KH)
            {
                _kh = 0;
                _kt++;
            }
        }
        _at = _window.Index(_kt, _kh, _kw, 0);
    }
}

/// <summary>
/// The input volume as the A operand for any Cin (the 3-channel encoder input, the 6-channel decoder input): each
/// value decoded on its own through the same <see cref="ConvWindow"/>.
/// </summary>
public struct ConvGatherSource : IConvInput
{
    private ArrayView<float> _data;
    private ConvWindow _window;
    private int _k;

    public readonly bool Packed => false;
    public readonly Bits128 NextPacked8() => default;

    public void Bind(ArrayView<float> x, ArrayView<Float4> x4, Conv3dArgs args)
    {
        _data = x;
        _window = ConvWindow.For(args);
    }

    public void Seek(int row, int k)
    {
        _window = _window.At(row);
        _k = k;
    }

    public Vec8 Next8()
    {
        int k = _k;
        _k += 8;
        if (!_window.Inside) return default;
        return new Vec8
        {
            V0 = At(k), V1 = At(k + 1), V2 = At(k + 2), V3 = At(k + 3), V4 = At(k + 4), V5 = At(k + 5), V6 = At(k + 6), V7 = At(k + 7),
        };
    }

    private readonly float At(int k)
    {
        if (k >= _window.Depth) return 0f;
        _window.Tap(k, out int kt, out int kh, out int kw, out int ci);
        return _data[_window.Index(kt, kh, kw, ci)];
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
    /// <summary>The kernel; <typeparamref name="TInput"/> is <see cref="ConvWindowSource"/> when Cin is a multiple of 8, else <see cref="ConvGatherSource"/>.</summary>
    public static void Conv<TMma, TInput>(ArrayView<float> x, ArrayView<Float4> x4, ArrayView<Bits128> weights, ArrayView<float> bias, ArrayView<float> y, Conv3dArgs a)
        where TMma : struct, IMma where TInput : struct, IConvInput
    {
        int positions = a.To * a.Ho * a.Wo, depth = a.KT * a.KH * a.KW * a.Cin;
        MmaTile.GroupOrigin(a.Cout, out int m0, out int n0);
        var input = default(TInput);
        input.Bind(x, x4, a);
        var w = new PackedHalfSource { Units = weights, Rows = a.Cout, UnitsPerRow = UnitsPerRow(depth) };
        var acc = MmaTile.Multiply<TMma, TInput, PackedHalfSource>(input, w, depth, m0, n0, a.Cout);
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
