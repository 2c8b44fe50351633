using System.Runtime.InteropServices;

namespace NbpEngine.Runtime.Cpu;

/// <summary>Owns 64-byte-aligned native buffers, zeroed, freed together on Dispose. Invisible to the GC.</summary>
public sealed unsafe class NativeArena : IDisposable
{
    private readonly List<nint> _blocks = new();
    public long Bytes { get; private set; }

    public float* Floats(long count) => (float*)Allocate(count * sizeof(float));
    public ulong* ULongs(long count) => (ulong*)Allocate(count * sizeof(ulong));
    public int* Ints(long count) => (int*)Allocate(count * sizeof(int));

    private void* Allocate(long bytes)
    {
        nuint size = (nuint)Math.Max(bytes, 64);
        void* p = NativeMemory.AlignedAlloc(size, 64);
        NativeMemory.Clear(p, size);
        _blocks.Add((nint)p);
        Bytes += (long)size;
        return p;
    }

    public void Dispose()
    {
        foreach (var p in _blocks) NativeMemory.AlignedFree((void*)p);
        _blocks.Clear();
    }
}
