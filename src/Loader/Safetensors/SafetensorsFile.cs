using System.Runtime.CompilerServices;
using System.Buffers.Binary;
using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;

namespace NbpEngine.Loader.Safetensors;

/// <summary>
/// A safetensors file opened read-only and memory-mapped. F32 tensors are used in place through
/// <see cref="GetPointer"/>; F16 and BF16 tensors are widened by <see cref="ReadAsFloat32"/>.
/// The header is validated completely before anything is mapped, and nothing larger than the file
/// is ever allocated. Dispose releases the mapping: pointers handed out die with it.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly Dictionary<string, TensorInfo> _byName;
    private bool _disposed;

    public string Path { get; }
    public IReadOnlyDictionary<string, string> Metadata { get; }

    /// <summary>Tensors in ascending offset order.</summary>
    public IReadOnlyList<TensorInfo> Tensors { get; }

    /// <summary>Bytes before the data buffer: 8 + header length.</summary>
    public long DataStart { get; }

    private SafetensorsFile(string path, SafetensorsHeader header, long dataStart, MemoryMappedFile map, MemoryMappedViewAccessor view, byte* basePointer)
    {
        Path = path;
        Metadata = header.Metadata;
        Tensors = header.Tensors;
        DataStart = dataStart;
        _map = map;
        _view = view;
        _base = basePointer;
        _byName = header.Tensors.ToDictionary(t => t.Name, StringComparer.Ordinal);
    }

    /// <summary>Opens and validates <paramref name="path"/>.</summary>
    /// <exception cref="SafetensorsFormatException">the file breaks a format rule.</exception>
    public static SafetensorsFile Open(string path)
    {
        var info = new FileInfo(path);
        if (!info.Exists) throw new FileNotFoundException($"{path}: weights file not found", path);
        long fileLength = info.Length;
        if (fileLength < 8)
            throw new SafetensorsFormatException(path, SafetensorsHeader.Rules.FileTooShort, $"file has {fileLength} bytes, at least 8 are needed for the header length");

        SafetensorsHeader header;
        long headerLength;
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read))
        {
            Span<byte> lengthBytes = stackalloc byte[8];
            stream.ReadExactly(lengthBytes);
            ulong n = BinaryPrimitives.ReadUInt64LittleEndian(lengthBytes);
            if (n > SafetensorsHeader.MaxHeaderLength || (long)n + 8 > fileLength)
                throw new SafetensorsFormatException(path, SafetensorsHeader.Rules.HeaderLength,
                    $"header length {n} exceeds {(n > SafetensorsHeader.MaxHeaderLength ? $"the limit of {SafetensorsHeader.MaxHeaderLength} bytes" : $"the file's {fileLength - 8} bytes after the length field")}");
            headerLength = (long)n;
            // Bounded above by the file size (checked just now), so a corrupt length cannot make us allocate more.
            var json = new byte[headerLength];
            stream.ReadExactly(json);
            header = SafetensorsHeader.Parse(json, fileLength - 8 - headerLength, path);
        }

        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, mapName: null, 0, MemoryMappedFileAccess.Read);
        var view = map.CreateViewAccessor(0, fileLength, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        pointer += view.PointerOffset;
        return new SafetensorsFile(path, header, 8 + headerLength, map, view, pointer);
    }

    public bool TryGetTensor(string name, out TensorInfo tensor) => _byName.TryGetValue(name, out tensor!);

    /// <summary>Pointer to the first byte of <paramref name="tensor"/> inside the mapping (not necessarily aligned).</summary>
    public byte* GetPointer(TensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _base + DataStart + tensor.Begin;
    }

    /// <summary>Copies <paramref name="tensor"/> into <paramref name="destination"/> as float32, widening F16/BF16.</summary>
    public void ReadAsFloat32(TensorInfo tensor, Span<float> destination)
    {
        if (destination.Length != tensor.ElementCount)
            throw new ArgumentException($"{Path}: tensor '{tensor.Name}' has {tensor.ElementCount} elements, destination holds {destination.Length}");
        fixed (float* d = destination) Widen(GetPointer(tensor), tensor.DType, d, tensor.ElementCount);
    }

    /// <summary>Widens <paramref name="count"/> values of <paramref name="dtype"/> at an unaligned source to float32.</summary>
    public static void Widen(byte* source, TensorDType dtype, float* destination, long count)
    {
        switch (dtype)
        {
            case TensorDType.F32:
                Buffer.MemoryCopy(source, destination, count * 4, count * 4);
                break;
            case TensorDType.F16:
                for (long i = 0; i < count; i++)
                    destination[i] = (float)BitConverter.UInt16BitsToHalf(Unsafe.ReadUnaligned<ushort>(source + 2 * i));
                break;
            case TensorDType.BF16:
                for (long i = 0; i < count; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(Unsafe.ReadUnaligned<ushort>(source + 2 * i) << 16);
                break;
        }
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
