using System.Runtime.InteropServices;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// A video activation in channels-last layout [time, height, width, channels], native memory.
/// Channels-last makes a conv's im2col row a set of contiguous channel runs and its GEMM output
/// land directly in place. Sizes are tracked so the tokenizer can report its peak memory.
/// </summary>
public sealed unsafe class Volume : IDisposable
{
    private static long _liveBytes, _peakBytes;

    public int Frames { get; }
    public int Height { get; }
    public int Width { get; }
    public int Channels { get; }
    public float* Data { get; private set; }
    public long Length => (long)Frames * Height * Width * Channels;
    public long Positions => (long)Frames * Height * Width;

    private readonly VolumePool? _pool;

    /// <param name="pool">where the buffer comes from and goes back to on Dispose (null: the native heap)</param>
    public Volume(int frames, int height, int width, int channels, VolumePool? pool = null)
    {
        Frames = frames; Height = height; Width = width; Channels = channels; _pool = pool;
        long bytes = Length * sizeof(float);
        Data = pool is null ? (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64) : pool.Rent(bytes);
        long live = Interlocked.Add(ref _liveBytes, bytes);
        long peak;
        while (live > (peak = Volatile.Read(ref _peakBytes)) && Interlocked.CompareExchange(ref _peakBytes, live, peak) != peak) { }
    }

    /// <summary>Bytes of activations alive now / at most since <see cref="ResetPeak"/>, over all volumes.</summary>
    public static long LiveBytes => Volatile.Read(ref _liveBytes);
    public static long PeakBytes => Volatile.Read(ref _peakBytes);
    public static void ResetPeak() => Volatile.Write(ref _peakBytes, LiveBytes);

    public float* Frame(int t) => Data + (long)t * Height * Width * Channels;

    public void Dispose()
    {
        if (Data == null) return;
        if (_pool is null) NativeMemory.AlignedFree(Data);
        else _pool.Return(Data, Length * sizeof(float));
        Data = null;
        Interlocked.Add(ref _liveBytes, -Length * sizeof(float));
    }
}
