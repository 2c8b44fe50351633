using System.Buffers.Binary;
using System.IO.Hashing;
using System.IO.MemoryMappedFiles;

namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>One entry of a <see cref="StoredZipArchive"/>: where its bytes lie in the file.</summary>
public sealed record ZipEntry(string Name, long DataOffset, long Length, uint Crc32);

/// <summary>
/// A zip archive as PyTorch writes checkpoints (every entry stored, uncompressed; ZIP64 when large), read
/// from a memory map without extracting anything. Validated before any entry is read: the central directory
/// lies inside the file, every entry is stored (method 0) and unencrypted, its local header agrees with the
/// central directory, its bytes lie inside the file and overlap no other entry, and its name is a relative
/// path with no empty, '.' or '..' segment, no backslash, colon or control character. A compressed entry is
/// refused outright, so no entry can expand beyond the file (no zip bombs). Entries are read through
/// <see cref="Read"/>, which checks the CRC-32 once per entry.
/// </summary>
public sealed unsafe class StoredZipArchive : IDisposable
{
    private const uint LocalHeaderSignature = 0x04034b50, CentralHeaderSignature = 0x02014b50;
    private const uint EndSignature = 0x06054b50, Zip64EndSignature = 0x06064b50, Zip64LocatorSignature = 0x07064b50;
    /// <summary>More entries than any checkpoint has (a 3B model has a few thousand tensors).</summary>
    public const int MaxEntries = 1_000_000;

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private readonly byte* _base;
    private readonly HashSet<string> _crcChecked = new(StringComparer.Ordinal);
    private bool _disposed;

    public string Path { get; }
    public long FileLength { get; }
    public IReadOnlyDictionary<string, ZipEntry> Entries { get; }

    private StoredZipArchive(string path, long length, MemoryMappedFile? map, MemoryMappedViewAccessor? view, byte* basePointer)
    {
        Path = path;
        FileLength = length;
        _map = map;
        _view = view;
        _base = basePointer;
        try
        {
            Entries = ReadCentralDirectory();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>True when the file starts like a zip archive (a local header, or an empty archive's end record).</summary>
    public static bool LooksLikeZip(string path)
    {
        using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read);
        Span<byte> magic = stackalloc byte[4];
        if (file.ReadAtLeast(magic, 4, throwOnEndOfStream: false) < 4) return false;
        uint signature = BinaryPrimitives.ReadUInt32LittleEndian(magic);
        return signature == LocalHeaderSignature || signature == EndSignature;
    }

    public static StoredZipArchive Open(string path)
    {
        long length = new FileInfo(path).Length;
        if (length < 22) throw Error(path, $"{length} bytes is too short for a zip archive (at least 22)");
        var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        MemoryMappedViewAccessor? view = null;
        try
        {
            view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            return new StoredZipArchive(path, length, map, view, pointer + view.PointerOffset);
        }
        catch
        {
            view?.Dispose();
            map.Dispose();
            throw;
        }
    }

    /// <summary>The bytes of <paramref name="entry"/>, in place; its CRC-32 is checked on the first read.</summary>
    public ReadOnlySpan<byte> Read(ZipEntry entry)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (entry.Length > int.MaxValue) throw Error(Path, $"entry '{entry.Name}' is {entry.Length} bytes; read it in parts with {nameof(Pointer)}");
        var bytes = new ReadOnlySpan<byte>(_base + entry.DataOffset, (int)entry.Length);
        CheckCrc(entry);
        return bytes;
    }

    /// <summary>The start of <paramref name="entry"/>'s bytes (valid while the archive is open); its CRC-32 is checked on the first call.</summary>
    public byte* Pointer(ZipEntry entry)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        CheckCrc(entry);
        return _base + entry.DataOffset;
    }

    private void CheckCrc(ZipEntry entry)
    {
        if (_crcChecked.Contains(entry.Name)) return;
        var crc = new Crc32();
        for (long done = 0; done < entry.Length;)
        {
            int part = (int)Math.Min(entry.Length - done, 1 << 30);
            crc.Append(new ReadOnlySpan<byte>(_base + entry.DataOffset + done, part));
            done += part;
        }
        uint found = crc.GetCurrentHashAsUInt32();
        if (found != entry.Crc32) throw Error(Path, $"entry '{entry.Name}': CRC-32 {found:x8} does not match the recorded {entry.Crc32:x8} (corrupt file)");
        _crcChecked.Add(entry.Name);
    }

    private Dictionary<string, ZipEntry> ReadCentralDirectory()
    {
        var (count, directoryOffset, directorySize) = FindEnd();
        if (count > MaxEntries) throw Error(Path, $"{count} entries, more than the {MaxEntries} a checkpoint can have");
        var entries = new Dictionary<string, ZipEntry>(StringComparer.Ordinal);
        var ranges = new List<(long Start, long End, string Name)>();
        long at = directoryOffset, directoryEnd = directoryOffset + directorySize;
        for (long i = 0; i < count; i++)
        {
            Need(at, 46, directoryEnd, "central directory entry");
            if (U32(at) != CentralHeaderSignature) throw Error(Path, $"central directory entry {i} at byte {at} has no signature");
            ushort flags = U16(at + 8), method = U16(at + 10);
            uint crc = U32(at + 16);
            long compressed = U32(at + 20), size = U32(at + 24), localOffset = U32(at + 42);
            int nameLength = U16(at + 28), extraLength = U16(at + 30), commentLength = U16(at + 32);
            Need(at + 46, nameLength + extraLength + commentLength, directoryEnd, "central directory entry");
            string name = EntryName(new ReadOnlySpan<byte>(_base + at + 46, nameLength), i);
            ReadZip64Extra(at + 46 + nameLength, extraLength, ref size, ref compressed, ref localOffset);
            if ((flags & 1) != 0) throw Error(Path, $"entry '{name}' is encrypted");
            if (method != 0 || compressed != size)
                throw Error(Path, $"entry '{name}' is compressed (method {method}, {compressed} -> {size} bytes); PyTorch stores checkpoint entries uncompressed, and compressed ones are refused");
            long dataOffset = LocalDataOffset(localOffset, name, directoryOffset);
            if (size > directoryOffset - dataOffset) throw Error(Path, $"entry '{name}' claims {size} bytes at byte {dataOffset}, past the end of the data");
            if (!entries.TryAdd(name, new ZipEntry(name, dataOffset, size, crc))) throw Error(Path, $"entry name '{name}' appears twice");
            ranges.Add((localOffset, dataOffset + size, name));
            at += 46 + nameLength + extraLength + commentLength;
        }
        ranges.Sort((a, b) => a.Start.CompareTo(b.Start));
        for (int i = 1; i < ranges.Count; i++)
            if (ranges[i].Start < ranges[i - 1].End) throw Error(Path, $"entries '{ranges[i - 1].Name}' and '{ranges[i].Name}' overlap");
        return entries;
    }

    private (long Count, long DirectoryOffset, long DirectorySize) FindEnd()
    {
        // the end record is the last 22 bytes plus a comment of at most 65535 bytes
        long lowest = Math.Max(0, FileLength - 22 - 65535);
        for (long at = FileLength - 22; at >= lowest; at--)
        {
            if (U32(at) != EndSignature || at + 22 + U16(at + 20) != FileLength) continue;
            long count = U16(at + 10), size = U32(at + 12), offset = U32(at + 16);
            if ((count == 0xFFFF || size == 0xFFFFFFFF || offset == 0xFFFFFFFF) && at >= 20 && U32(at - 20) == Zip64LocatorSignature)
            {
                long end64 = (long)Math.Min(U64(at - 20 + 8), long.MaxValue);
                Need(end64, 56, at - 20, "ZIP64 end record");
                if (U32(end64) != Zip64EndSignature) throw Error(Path, $"ZIP64 end record at byte {end64} has no signature");
                count = (long)Math.Min(U64(end64 + 32), long.MaxValue);
                size = (long)Math.Min(U64(end64 + 40), long.MaxValue);
                offset = (long)Math.Min(U64(end64 + 48), long.MaxValue);
            }
            if (offset > at || size > at - offset) throw Error(Path, $"central directory ({size} bytes at byte {offset}) lies outside the file");
            return (count, offset, size);
        }
        throw Error(Path, "no zip end-of-central-directory record");
    }

    private void ReadZip64Extra(long at, int length, ref long size, ref long compressed, ref long localOffset)
    {
        for (long end = at + length; at + 4 <= end;)
        {
            ushort id = U16(at), fieldLength = U16(at + 2);
            if (at + 4 + fieldLength > end) throw Error(Path, $"extra field at byte {at} runs past its entry");
            if (id == 1)
            {
                long field = at + 4, fieldEnd = field + fieldLength;
                long Next(long value)
                {
                    if (value != 0xFFFFFFFF) return value;
                    if (field + 8 > fieldEnd) throw Error(Path, $"ZIP64 extra field at byte {at} is too short");
                    ulong wide = U64(field);
                    field += 8;
                    if (wide > long.MaxValue) throw Error(Path, $"ZIP64 value {wide} at byte {field - 8} is out of range");
                    return (long)wide;
                }
                size = Next(size);
                compressed = Next(compressed);
                localOffset = Next(localOffset);
            }
            at += 4 + fieldLength;
        }
    }

    private long LocalDataOffset(long localOffset, string name, long directoryOffset)
    {
        Need(localOffset, 30, directoryOffset, $"local header of '{name}'");
        if (U32(localOffset) != LocalHeaderSignature) throw Error(Path, $"entry '{name}': no local header at byte {localOffset}");
        int nameLength = U16(localOffset + 26), extraLength = U16(localOffset + 28);
        Need(localOffset + 30, nameLength + extraLength, directoryOffset, $"local header of '{name}'");
        if (!new ReadOnlySpan<byte>(_base + localOffset + 30, nameLength).SequenceEqual(System.Text.Encoding.UTF8.GetBytes(name)))
            throw Error(Path, $"entry '{name}': the local header names a different file");
        return localOffset + 30 + nameLength + extraLength;
    }

    /// <summary>A relative path of plain segments: nothing that could name a place outside a folder if it were ever extracted.</summary>
    private string EntryName(ReadOnlySpan<byte> raw, long index)
    {
        string name;
        try
        {
            name = new System.Text.UTF8Encoding(false, throwOnInvalidBytes: true).GetString(raw);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw Error(Path, $"entry name {index} is not valid UTF-8");
        }
        bool bad = name.Length == 0 || name.Any(c => c < 0x20 || c == '\\' || c == ':' || c == 0x7F)
                   || name.Split('/').Any(segment => segment is "" or "." or "..");
        if (bad) throw Error(Path, $"entry name '{Printable(name)}' is not a plain relative path; refused");
        return name;
    }

    private static string Printable(string text) => string.Concat(text.Select(c => c < 0x20 || c == 0x7F ? $"\\x{(int)c:x2}" : c.ToString()));

    private void Need(long at, long count, long limit, string what)
    {
        if (at < 0 || count < 0 || at > limit || count > limit - at) throw Error(Path, $"{what} at byte {at} runs past its bounds (byte {limit})");
    }

    private ushort U16(long at) => BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(_base + at, 2));
    private uint U32(long at) => BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_base + at, 4));
    private ulong U64(long at) => BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_base + at, 8));

    private static CheckpointFormatException Error(string path, string detail) => new(path, detail);

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        if (_view is not null)
        {
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
        }
        _map?.Dispose();
    }
}
