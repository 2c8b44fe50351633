using NbpEngine.Runtime.Cpu;
using NbpEngine.Runtime.Threading;
using NbpEngine.Tokenizer.Cpu;

namespace NbpEngine.Tokenizer;

/// <summary>How the CPU runs the 3x3x3 convs.</summary>
public enum ConvAlgorithm
{
    /// <summary>Winograd where it applies and the frame is big enough to pay for it (<see cref="TokenizerWorkspace.WinogradMinPixels"/>), else im2col.</summary>
    Auto,
    /// <summary>Blocked implicit GEMM everywhere (27·cin-long dot products per output).</summary>
    Im2Col,
    /// <summary>Winograd F(4x4, 3x3) for every stride-1 3x3x3 conv with channel counts divisible by 16.</summary>
    Winograd,
}

/// <summary>Per-run resources shared by the layers: threads, GEMM/gather jobs, scratch buffers.</summary>
public sealed unsafe class TokenizerWorkspace : IDisposable
{
    internal const int Im2ColSlot = 0, WinogradInputSlot = 1, WinogradOutputSlot = 2;
    /// <summary>
    /// Auto uses Winograd from 32x32 output frames up. Below that the frames are few pixels but the convs
    /// are the 512-wide ones, whose transformed weights would cost ~2.7 GB for ~7% of the decode.
    /// </summary>
    public const int WinogradMinPixels = 32 * 32;
    private readonly float*[] _scratch = new float*[3];
    private readonly long[] _scratchLength = new long[3];
    private readonly NativeArena _arena = new();

    public WorkerPool Pool { get; }
    /// <summary>Activation buffers reused between layers (see <see cref="VolumePool"/>).</summary>
    public VolumePool Volumes { get; } = new();
    public ConvAlgorithm Algorithm { get; }
    /// <summary>Upper bound for a Winograd conv's transformed input plus GEMM output (it works a chunk of frames at a time).</summary>
    public long WinogradBudgetBytes { get; }
    public PackedMatMulJob PackedMatMul { get; } = new();
    internal GatherJob Gather { get; } = new();
    internal WinogradJobs Winograd { get; } = new();
    /// <summary>Per-worker GroupNorm scratch, 4 x the widest channel count.</summary>
    internal float*[] NormScratch { get; }

    public TokenizerWorkspace(int threads, int maxChannels, ConvAlgorithm algorithm = ConvAlgorithm.Auto, long winogradBudgetBytes = 256L << 20)
    {
        Pool = new WorkerPool(threads);
        Algorithm = algorithm;
        WinogradBudgetBytes = winogradBudgetBytes;
        NormScratch = new float*[threads];
        for (int i = 0; i < threads; i++) NormScratch[i] = _arena.Floats(4L * maxChannels);
    }

    /// <summary>Scratch buffer <paramref name="slot"/>, grown on demand (the largest user decides; reused by all).</summary>
    internal float* Scratch(int slot, long length)
    {
        if (length > _scratchLength[slot])
        {
            if (_scratch[slot] != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(_scratch[slot]);
            _scratch[slot] = (float*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc((nuint)(length * sizeof(float)), 64);
            _scratchLength[slot] = length;
        }
        return _scratch[slot];
    }

    public long ScratchBytes => _scratchLength.Sum() * sizeof(float) + _arena.Bytes;

    /// <summary>A volume whose buffer comes from, and returns to, <see cref="Volumes"/>.</summary>
    public Volume NewVolume(int frames, int height, int width, int channels) => new(frames, height, width, channels, Volumes);

    public void Dispose()
    {
        Pool.Dispose();
        Volumes.Dispose();
        foreach (var p in _scratch)
            if (p != null) System.Runtime.InteropServices.NativeMemory.AlignedFree(p);
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
        var y = ws.NewVolume(t, h, w, Conv.OutChannels);
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
        var y = Depth2Space.Run(x, bt, bh, bw, ws);
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
        var h = ws.NewVolume(x.Frames, x.Height, x.Width, x.Channels);
        norm1.Run(ws, x, h);
        var h2 = ws.NewVolume(x.Frames, x.Height, x.Width, conv1.OutChannels);
        conv1.Run(ws, h, h2, accumulate: false);
        h.Dispose();
        norm2.Run(ws, h2, h2);
        Volume output;
        if (residual is null) output = x;
        else
        {
            output = ws.NewVolume(x.Frames, x.Height, x.Width, residual.OutChannels);
            residual.Run(ws, x, output, accumulate: false);
            x.Dispose();
        }
        conv2.Run(ws, h2, output, accumulate: true);
        h2.Dispose();
        return output;
    }
}
