using NbpEngine.Runtime.Threading;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// Depth2Space3D((bt, bh, bw)): channel ((it·bh + ih)·bw + iw)·cout + o of voxel (t, h, w) moves to
/// channel o of voxel (t·bt + it, h·bh + ih, w·bw + iw); with bt > 1 the first bt-1 output frames are
/// dropped (5 -> 9 -> 17 frames). In channels-last every move is a contiguous run of cout floats.
/// A pure permutation, but of the largest activations (285 MB at 128x128): rows of the output run in
/// parallel on the pool (one thread took ~0.6 s of a 7.6 s decode).
/// </summary>
public sealed unsafe class Depth2Space : IParallelWork
{
    private Volume _x = null!, _y = null!;
    private int _bt, _bh, _bw, _cout;

    /// <summary>The rearranged volume; without a workspace it runs on the calling thread, on the native heap.</summary>
    public static Volume Run(Volume x, int bt, int bh, int bw, TokenizerWorkspace? ws = null)
    {
        int cout = x.Channels / (bt * bh * bw);
        if (cout * bt * bh * bw != x.Channels) throw new InvalidDataException($"Depth2Space3D({bt},{bh},{bw}): {x.Channels} channels is not a multiple of {bt * bh * bw}");
        int frames = x.Frames * bt - (bt - 1), height = x.Height * bh, width = x.Width * bw;
        var y = ws?.NewVolume(frames, height, width, cout) ?? new Volume(frames, height, width, cout);
        var job = new Depth2Space { _x = x, _y = y, _bt = bt, _bh = bh, _bw = bw, _cout = cout };
        int tasks = y.Frames * x.Height; // one input row of one output frame each
        if (ws is null)
            for (int task = 0; task < tasks; task++) job.Execute(task, 0);
        else ws.Pool.Run(job, tasks);
        return y;
    }

    public void Execute(int task, int worker)
    {
        int to = task / _x.Height, h = task % _x.Height;
        int frameIndex = to + (_bt - 1);           // index in the undropped output
        int t = frameIndex / _bt, it = frameIndex % _bt;
        long bytes = (long)_cout * _bw * sizeof(float); // the bw runs are adjacent on both sides
        for (int ih = 0; ih < _bh; ih++)
            for (int w = 0; w < _x.Width; w++)
            {
                float* src = _x.Frame(t) + ((long)h * _x.Width + w) * _x.Channels + (long)((it * _bh + ih) * _bw) * _cout;
                float* dst = _y.Frame(to) + ((long)(h * _bh + ih) * _y.Width + w * _bw) * _cout;
                Buffer.MemoryCopy(src, dst, bytes, bytes);
            }
    }
}
