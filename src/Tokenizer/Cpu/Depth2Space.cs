namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// Depth2Space3D((bt, bh, bw)): channel ((it·bh + ih)·bw + iw)·cout + o of voxel (t, h, w) moves to
/// channel o of voxel (t·bt + it, h·bh + ih, w·bw + iw); with bt > 1 the first bt-1 output frames are
/// dropped (5 -> 9 -> 17 frames). In channels-last every move is a contiguous run of cout floats.
/// </summary>
public static unsafe class Depth2Space
{
    public static Volume Run(Volume x, int bt, int bh, int bw)
    {
        int cout = x.Channels / (bt * bh * bw);
        if (cout * bt * bh * bw != x.Channels) throw new InvalidDataException($"Depth2Space3D({bt},{bh},{bw}): {x.Channels} channels is not a multiple of {bt * bh * bw}");
        int frames = x.Frames * bt - (bt - 1), height = x.Height * bh, width = x.Width * bw;
        var y = new Volume(frames, height, width, cout);
        long bytes = cout * sizeof(float);
        for (int t = 0; t < x.Frames; t++)
            for (int it = 0; it < bt; it++)
            {
                int to = t * bt + it - (bt - 1);
                if (to < 0) continue; // the dropped leading frames
                for (int h = 0; h < x.Height; h++)
                    for (int ih = 0; ih < bh; ih++)
                        for (int w = 0; w < x.Width; w++)
                        {
                            float* src = x.Frame(t) + ((long)h * x.Width + w) * x.Channels + (long)((it * bh + ih) * bw) * cout;
                            float* dst = y.Frame(to) + ((long)(h * bh + ih) * width + w * bw) * cout;
                            Buffer.MemoryCopy(src, dst, bytes * bw, bytes * bw); // the bw runs are adjacent on both sides
                        }
            }
        return y;
    }
}
