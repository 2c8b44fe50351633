using System.Runtime.InteropServices;

namespace NbpEngine.Tokenizer.Cpu;

/// <summary>
/// Keeps the buffers of disposed volumes for the next volume of the same size, for one decode or encode.
/// The layers allocate and drop activations of a few repeating sizes (up to 285 MB at 128x128); large
/// native allocations are fresh mmaps, so without reuse every one pays its page faults again (~0.1-0.3 s
/// per 285 MB on the development VM). Holds at most <see cref="MaxPooledBytes"/>; frees all on Dispose.
/// Not thread-safe: the layers allocate on the calling thread.
/// </summary>
public sealed unsafe class VolumePool : IDisposable
{
    public const long MaxPooledBytes = 1L << 30;
    private readonly List<(nint Data, long Bytes)> _free = new();
    private long _pooledBytes;

    internal float* Rent(long bytes)
    {
        for (int i = _free.Count - 1; i >= 0; i--)
            if (_free[i].Bytes == bytes)
            {
                var data = _free[i].Data;
                _free.RemoveAt(i);
                _pooledBytes -= bytes;
                return (float*)data;
            }
        return (float*)NativeMemory.AlignedAlloc((nuint)Math.Max(bytes, 64), 64);
    }

    internal void Return(float* data, long bytes)
    {
        // the oldest buffers go first when the cap would be passed (sizes of a finished stage)
        while (_free.Count > 0 && _pooledBytes + bytes > MaxPooledBytes)
        {
            NativeMemory.AlignedFree((void*)_free[0].Data);
            _pooledBytes -= _free[0].Bytes;
            _free.RemoveAt(0);
        }
        if (bytes > MaxPooledBytes)
        {
            NativeMemory.AlignedFree(data);
            return;
        }
        _free.Add(((nint)data, bytes));
        _pooledBytes += bytes;
    }

    public void Dispose()
    {
        foreach (var (data, _) in _free) NativeMemory.AlignedFree((void*)data);
        _free.Clear();
        _pooledBytes = 0;
    }
}
