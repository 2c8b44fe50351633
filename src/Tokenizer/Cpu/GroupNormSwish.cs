using System.Runtime.Intrinsics;
using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// GroupNorm3D (32 groups, statistics per frame over the group's channels x H x W, eps 1e-5, affine)
/// optionally followed by Swish x·sigmoid(beta_c·x): the pair always appears together in the
/// tokenizer, so it is one pass. In place when y is x. Two-pass statistics, row sums in float, frame
/// sums in double. Parallel over frames.
/// </summary>
public sealed unsafe class GroupNormSwish : IParallelWork
{
    public const int Groups = 32;
    private readonly float* _gamma, _beta, _swishBeta; // [C]; swishBeta null = GroupNorm alone
    private readonly int _channels;
    private Volume _x = null!, _y = null!;
    private float*[] _scratch = null!; // per worker: [4C] channel sums / scale / shift / mean (the workspace's)

    public int Channels => _channels;
    internal ReadOnlySpan<float> Gamma => new(_gamma, _channels);
    internal ReadOnlySpan<float> Beta => new(_beta, _channels);
    /// <summary>Empty when the layer is GroupNorm alone.</summary>
    internal ReadOnlySpan<float> SwishBeta => _swishBeta == null ? default : new(_swishBeta, _channels);

    internal GroupNormSwish(int channels, float* gamma, float* beta, float* swishBeta)
    {
        if (channels % Groups != 0) throw new InvalidDataException($"GroupNorm3D needs channels divisible by {Groups}, found {channels}");
        _channels = channels; _gamma = gamma; _beta = beta; _swishBeta = swishBeta;
    }

    public void Run(TokenizerWorkspace ws, Volume x, Volume y)
    {
        if (x.Channels != _channels || y.Length != x.Length) throw new InvalidOperationException($"GroupNorm3D({_channels}) on {x.Channels} channels");
        _x = x; _y = y; _scratch = ws.NormScratch;
        ws.Pool.Run(this, x.Frames);
    }

    public void Execute(int frame, int worker)
    {
        int c = _channels, perGroup = c / Groups;
        long positions = (long)_x.Height * _x.Width;
        float* src = _x.Frame(frame), dst = _y.Frame(frame);
        float* rowSum = _scratch[worker], scale = rowSum + c, shift = scale + c, mean = shift + c;
        Span<double> groupSum = stackalloc double[Groups];

        // pass 1: per-channel sums -> group means
        ChannelSums(src, positions, c, null, rowSum, groupSum, perGroup);
        for (int g = 0; g < Groups; g++)
        {
            float m = (float)(groupSum[g] / (positions * perGroup));
            for (int k = 0; k < perGroup; k++) mean[g * perGroup + k] = m;
        }
        // pass 2: per-channel sums of squared deviations -> group variances
        ChannelSums(src, positions, c, mean, rowSum, groupSum, perGroup);
        for (int g = 0; g < Groups; g++)
        {
            float rstd = (float)(1.0 / Math.Sqrt(groupSum[g] / (positions * perGroup) + 1e-5));
            for (int k = 0; k < perGroup; k++)
            {
                int ch = g * perGroup + k;
                scale[ch] = rstd * _gamma[ch];
                shift[ch] = _beta[ch] - mean[ch] * scale[ch];
            }
        }
        for (long p = 0; p < positions; p++) Apply(src + p * c, dst + p * c, scale, shift, _swishBeta, c);
    }

    /// <summary>groupSum[g] = Σ over positions and the group's channels of x (or (x - mean)² when mean is given).</summary>
    private static void ChannelSums(float* src, long positions, int c, float* mean, float* acc, Span<double> groupSum, int perGroup)
    {
        groupSum.Clear();
        const int rowsPerFlush = 64; // float accumulation over at most 64 positions, then into double
        for (long p0 = 0; p0 < positions; p0 += rowsPerFlush)
        {
            new Span<float>(acc, c).Clear();
            long end = Math.Min(positions, p0 + rowsPerFlush);
            for (long p = p0; p < end; p++)
            {
                float* row = src + p * c;
                int i = 0;
                if (mean == null)
                    for (; i + 16 <= c; i += 16) Vector512.Store(Vector512.Load(acc + i) + Vector512.Load(row + i), acc + i);
                else
                    for (; i + 16 <= c; i += 16)
                    {
                        var d = Vector512.Load(row + i) - Vector512.Load(mean + i);
                        Vector512.Store(Vector512.FusedMultiplyAdd(d, d, Vector512.Load(acc + i)), acc + i);
                    }
                for (; i < c; i++)
                {
                    float d = mean == null ? row[i] : row[i] - mean[i];
                    acc[i] += mean == null ? d : d * d;
                }
            }
            for (int ch = 0; ch < c; ch++) groupSum[ch / perGroup] += acc[ch];
        }
    }

    private static void Apply(float* x, float* y, float* scale, float* shift, float* swishBeta, int c)
    {
        int i = 0;
        for (; i + 16 <= c; i += 16)
        {
            var v = Vector512.FusedMultiplyAdd(Vector512.Load(x + i), Vector512.Load(scale + i), Vector512.Load(shift + i));
            if (swishBeta != null)
                v /= Vector512<float>.One + Vector512.Exp(-(Vector512.Load(swishBeta + i) * v));
            Vector512.Store(v, y + i);
        }
        for (; i < c; i++)
        {
            float v = x[i] * scale[i] + shift[i];
            y[i] = swishBeta == null ? v : v / (1f + MathF.Exp(-swishBeta[i] * v));
        }
    }
}
