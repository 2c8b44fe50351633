using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;
using NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Tokenizer;

/// <summary>Per-run resources shared by the layers: threads, GEMM/gather jobs, im2col scratch.</summary>
public sealed unsafe class TokenizerWorkspace : IDisposable
{
    private float* _im2col;
    private long _im2colLength;
    private readonly NativeArena _arena = new();

    public WorkerPool Pool { get; }
    public PackedMatMulJob PackedMatMul { get; } = new();
    internal GatherJob Gather { get; } = new();
    /// <summary>Per-worker GroupNorm scratch, 4 x the widest channel count.</summary>
    internal float*[] NormScratch { get; }

    public TokenizerWorkspace(int threads, int maxChannels)
    {
        Pool = new WorkerPool(threads);
        NormScratch = new float*[threads];
        for (int i = 0; i < threads; i++) NormScratch[i] = _arena.Floats(4L * maxChannels);
    }

    /// <summary>The im2col block, grown on demand (the largest conv decides; reused by all).</summary>
    public float* Im2Col(long length)
    {
        if (length > _im2colLength)
        {
            if (_im2col != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(_im2col);
            _im2col = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(length * sizeof(float)), 64);
            _im2colLength = length;
        }
        return _im2col;
    }

    public long ScratchBytes => _im2colLength * sizeof(float) + _arena.Bytes;

    public void Dispose()
    {
        Pool.Dispose();
        if (_im2col != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(_im2col);
        _arena.Dispose();
    }
}

/// <summary>One entry of the decoder/encoder layer list. Run consumes its input (disposes it) unless it returns it.</summary>
internal abstract class TokenizerLayer
{
    /// <summary>The convolutions this layer owns (to release their packed weights).</summary>
    public virtual IEnumerable<Conv3d> Convs => [];
    public abstract int InChannels { get; }
    public abstract int OutChannels { get; }
    public abstract Volume Run(TokenizerWorkspace ws, Volume x);
}

internal sealed class ConvLayer(Conv3d conv) : TokenizerLayer
{
    public Conv3d Conv { get; } = conv;
    public override IEnumerable<Conv3d> Convs => [Conv];
    public override int InChannels => Conv.InChannels;
    public override int OutChannels => Conv.OutChannels;

    public override Volume Run(TokenizerWorkspace ws, Volume x)
    {
        var (t, h, w) = Conv.OutputShape(x);
        var y = new Volume(t, h, w, Conv.OutChannels);
        Conv.Run(ws, x, y, accumulate: false);
        x.Dispose();
        return y;
    }
}

/// <summary>GroupNorm3D followed by Swish (decoder 27-28, encoder 24-25), fused, in place.</summary>
internal sealed class NormSwishLayer(GroupNormSwish norm) : TokenizerLayer
{
    public GroupNormSwish Norm => norm;
    public override int InChannels => norm.Channels;
    public override int OutChannels => norm.Channels;

    public override Volume Run(TokenizerWorkspace ws, Volume x)
    {
        norm.Run(ws, x, x);
        return x;
    }
}

internal sealed class Depth2SpaceLayer(int bt, int bh, int bw, int inChannels) : TokenizerLayer
{
    public (int T, int H, int W) Factors => (bt, bh, bw);
    public override int InChannels => inChannels;
    public override int OutChannels => inChannels / (bt * bh * bw);

    public override Volume Run(TokenizerWorkspace ws, Volume x)
    {
        var y = Depth2Space.Run(x, bt, bh, bw);
        x.Dispose();
        return y;
    }
}

/// <summary>
/// ResidualUnit: fn(x) + r(x), fn = [GN, Swish, conv3, GN, Swish, conv3], r = 1x1x1 conv when the width
/// changes, else identity. With identity the second conv accumulates straight into x (no copy).
/// </summary>
internal sealed class ResidualLayer(GroupNormSwish norm1, Conv3d conv1, GroupNormSwish norm2, Conv3d conv2, Conv3d? residual) : TokenizerLayer
{
    public (GroupNormSwish Norm1, Conv3d Conv1, GroupNormSwish Norm2, Conv3d Conv2, Conv3d? Residual) Parts => (norm1, conv1, norm2, conv2, residual);
    public override IEnumerable<Conv3d> Convs => residual is null ? [conv1, conv2] : [conv1, conv2, residual];
    public override int InChannels => conv1.InChannels;
    public override int OutChannels => conv2.OutChannels;

    public override Volume Run(TokenizerWorkspace ws, Volume x)
    {
        var h = new Volume(x.Frames, x.Height, x.Width, x.Channels);
        norm1.Run(ws, x, h);
        var h2 = new Volume(x.Frames, x.Height, x.Width, conv1.OutChannels);
        conv1.Run(ws, h, h2, accumulate: false);
        h.Dispose();
        norm2.Run(ws, h2, h2);
        Volume output;
        if (residual is null) output = x;
        else
        {
            output = new Volume(x.Frames, x.Height, x.Width, residual.OutChannels);
            residual.Run(ws, x, output, accumulate: false);
            x.Dispose();
        }
        conv2.Run(ws, h2, output, accumulate: true);
        h2.Dispose();
        return output;
    }
}
