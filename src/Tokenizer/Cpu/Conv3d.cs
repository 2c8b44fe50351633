using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// CausalConv3d (TOKENIZER.md): replicate padding kw/2 and kh/2 on both sides, 2·(kt/2) frames in
/// front and none after, then a plain strided conv. Computed as a blocked implicit GEMM: for a block
/// of output positions the im2col rows are gathered (contiguous channel runs, thanks to channels-last)
/// into a scratch block, then the packed outer-product GEMM (Runtime/Cpu/PackedGemm.cs) multiplies it with
/// the weights, permuted once to [cout, kt, kh, kw, cin] and packed into 32-column panels. No im2col of
/// the whole volume ever exists. Stride-1 3x3x3 convs on big enough frames go the Winograd way instead
/// (<see cref="WinogradConv"/>, 4x fewer multiplies).
/// </summary>
public sealed unsafe class Conv3d
{
    /// <summary>Output positions per GEMM block: the im2col block is BlockPositions x K floats.</summary>
    public const int BlockPositions = 256;

    public int InChannels { get; }
    public int OutChannels { get; }
    public int KT { get; }
    public int KH { get; }
    public int KW { get; }
    public (int T, int H, int W) Stride { get; }
    /// <summary>false for the encoder's plain 1x1x1 output conv (no padding of its own; same result for k = 1).</summary>
    public bool Causal { get; }
    private readonly float* _weight; // [cout, kt, kh, kw, cin]
    private readonly float* _bias;   // [cout]
    // CPU copies of the weights, made on first use: 32-column panels for the im2col GEMM, and the
    // Winograd-transformed ones (4x the size) for the convs that run that way
    private readonly Lazy<PackedWeights> _packed;
    private readonly Lazy<WinogradConv>? _winograd;

    public int K => KT * KH * KW * InChannels;

    /// <summary>[cout, K] weights and [cout] bias, for uploading to a device.</summary>
    internal ReadOnlySpan<float> Weight => new(_weight, OutChannels * K);
    internal ReadOnlySpan<float> Bias => new(_bias, OutChannels);

    internal Conv3d(int cin, int cout, int kt, int kh, int kw, (int, int, int) stride, float* weight, float* bias, bool causal = true)
    {
        InChannels = cin; OutChannels = cout; KT = kt; KH = kh; KW = kw; Stride = stride; _weight = weight; _bias = bias; Causal = causal;
        _packed = new(() => new PackedWeights(_weight, OutChannels, K));
        if (WinogradApplies) _winograd = new(() => new WinogradConv(_weight, _bias, InChannels, OutChannels));
    }

    /// <summary>Stride-1 causal 3x3x3 with channel counts the Winograd transforms handle (multiples of <see cref="WinogradF43.Lanes"/>).</summary>
    public bool WinogradApplies => KT == 3 && KH == 3 && KW == 3 && Stride == (1, 1, 1) && Causal && InChannels % WinogradF43.Lanes == 0 && OutChannels % WinogradF43.Lanes == 0;

    /// <summary>Whether <see cref="Run"/> takes the Winograd path for this output frame size under <paramref name="algorithm"/>.</summary>
    public bool UsesWinograd(ConvAlgorithm algorithm, int height, int width) => WinogradApplies && algorithm switch
    {
        ConvAlgorithm.Winograd => true,
        ConvAlgorithm.Auto => height * width >= TokenizerWorkspace.WinogradMinPixels,
        _ => false,
    };

    /// <summary>Makes the CPU weight copy <see cref="Run"/> will use for this frame size now rather than on first use.</summary>
    public void Prepare(ConvAlgorithm algorithm, int height, int width)
    {
        if (UsesWinograd(algorithm, height, width)) _ = _winograd!.Value;
        else _ = _packed.Value;
    }

    /// <summary>Floating-point operations of the convolution as defined (2 per multiply-add) for an output of this shape.</summary>
    public double DirectFlops((int T, int H, int W) output) => 2.0 * output.T * output.H * output.W * OutChannels * K;

    /// <summary>
    /// Floating-point operations the CPU's GEMMs execute for an output of this shape: the direct count
    /// for im2col, 2·tiles·36·3·cin·cout for Winograd (transforms not counted: they are adds).
    /// </summary>
    public double GemmFlops(ConvAlgorithm algorithm, (int T, int H, int W) output)
    {
        if (!UsesWinograd(algorithm, output.H, output.W)) return DirectFlops(output);
        var tiles = new TileGeometry(output.H, output.W).Tiles;
        return 2.0 * output.T * tiles * WinogradF43.Points * 3.0 * InChannels * OutChannels;
    }

    /// <summary>Bytes of the CPU weight copies made so far (packed and Winograd).</summary>
    public long CpuWeightBytes => (_packed.IsValueCreated ? _packed.Value.Bytes : 0) + (_winograd is { IsValueCreated: true } ? _winograd.Value.WeightBytes : 0);

    /// <summary>Frees the CPU weight copies (the [cout, K] weights belong to the tokenizer's weights).</summary>
    internal void ReleasePacked()
    {
        if (_packed.IsValueCreated) _packed.Value.Dispose();
        if (_winograd is { IsValueCreated: true }) _winograd.Value.Dispose();
    }

    public (int T, int H, int W) OutputShape(Volume x) =>
        ((x.Frames + 2 * (KT / 2) - KT) / Stride.T + 1, (x.Height + 2 * (KH / 2) - KH) / Stride.H + 1, (x.Width + 2 * (KW / 2) - KW) / Stride.W + 1);

    /// <summary>y = conv(x) (or y += conv(x) when <paramref name="accumulate"/>); y must have the output shape.</summary>
    public void Run(TokenizerWorkspace ws, Volume x, Volume y, bool accumulate)
    {
        var (to, ho, wo) = OutputShape(x);
        if (x.Channels != InChannels || y.Channels != OutChannels || y.Frames != to || y.Height != ho || y.Width != wo)
            throw new InvalidOperationException($"conv {InChannels}->{OutChannels} k{KT}x{KH}x{KW}: input [{x.Frames},{x.Height},{x.Width},{x.Channels}] does not give output [{y.Frames},{y.Height},{y.Width},{y.Channels}]");
        var store = accumulate ? GemmStore.Accumulate : GemmStore.Overwrite;
        if (KT == 1 && KH == 1 && KW == 1 && Stride == (1, 1, 1))
        {
            // pointwise: the volume already is the [positions, cin] matrix
            ws.PackedMatMul.Run(ws.Pool, x.Data, checked((int)x.Positions), InChannels, _packed.Value, _bias, y.Data, OutChannels, store);
            return;
        }
        if (UsesWinograd(ws.Algorithm, y.Height, y.Width))
        {
            _winograd!.Value.Run(ws, x, y, store);
            return;
        }
        long positions = y.Positions;
        float* block = ws.Scratch(TokenizerWorkspace.Im2ColSlot, BlockPositions * (long)K);
        for (long p0 = 0; p0 < positions; p0 += BlockPositions)
        {
            int count = (int)Math.Min(BlockPositions, positions - p0);
            ws.Gather.Run(ws.Pool, this, x, y, p0, count, block);
            ws.PackedMatMul.Run(ws.Pool, block, count, K, _packed.Value, _bias, y.Data + p0 * OutChannels, OutChannels, store);
        }
    }

    /// <summary>Writes the im2col row of output position p (flattened t, h, w) to <paramref name="row"/>.</summary>
    internal void GatherRow(Volume x, int ho, int wo, long p, float* row)
    {
        int t = (int)(p / ((long)ho * wo)), rest = (int)(p % ((long)ho * wo));
        int h = rest / wo, w = rest % wo;
        int padT = 2 * (KT / 2), padH = KH / 2, padW = KW / 2;
        int cin = InChannels;
        long bytes = cin * sizeof(float);
        for (int kt = 0; kt < KT; kt++)
        {
            int ti = Math.Max(0, t * Stride.T + kt - padT); // replicate the first frame in front
            for (int kh = 0; kh < KH; kh++)
            {
                int hi = Math.Clamp(h * Stride.H + kh - padH, 0, x.Height - 1);
                float* src = x.Frame(ti) + (long)hi * x.Width * cin;
                for (int kw = 0; kw < KW; kw++)
                {
                    int wi = Math.Clamp(w * Stride.W + kw - padW, 0, x.Width - 1);
                    Buffer.MemoryCopy(src + (long)wi * cin, row, bytes, bytes);
                    row += cin;
                }
            }
        }
    }
}

/// <summary>Gathers im2col rows of a block of output positions in parallel.</summary>
internal sealed unsafe class GatherJob : IParallelWork
{
    private const int RowsPerTask = 16;
    private Conv3d _conv = null!;
    private Volume _x = null!;
    private int _ho, _wo, _count;
    private long _p0;
    private float* _block;

    public void Run(WorkerPool pool, Conv3d conv, Volume x, Volume y, long p0, int count, float* block)
    {
        _conv = conv; _x = x; _ho = y.Height; _wo = y.Width; _p0 = p0; _count = count; _block = block;
        pool.Run(this, (count + RowsPerTask - 1) / RowsPerTask);
    }

    public void Execute(int task, int worker)
    {
        int end = Math.Min(_count, (task + 1) * RowsPerTask);
        for (int r = task * RowsPerTask; r < end; r++)
            _conv.GatherRow(_x, _ho, _wo, _p0 + r, _block + (long)r * _conv.K);
    }
}
