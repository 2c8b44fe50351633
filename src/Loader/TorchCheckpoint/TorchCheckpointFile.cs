using NbpEngine.Loader.Pickle;

namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>
/// A PyTorch checkpoint (torch.save's zip format, torch >= 1.6) read without Python and without running it:
/// <c>PREFIX/data.pkl</c> goes through <see cref="PickleMachine"/> with <see cref="CheckpointAllowList"/>,
/// and storages are zip entries <c>PREFIX/data/KEY</c> whose size must equal their element count times the
/// element size. <see cref="Root"/> is the unpickled object: dicts, lists, tuples, scalars, <see cref="TorchTensor"/>s.
/// Storage bytes are not touched until <see cref="StorageBytes"/> (memory-mapped, CRC-checked on first use).
/// </summary>
public sealed unsafe class TorchCheckpointFile : IDisposable
{
    private readonly StoredZipArchive _zip;
    private readonly string _prefix;
    private readonly Dictionary<string, TorchStorage> _storages = new(StringComparer.Ordinal);

    public string Path => _zip.Path;
    public object? Root { get; }
    /// <summary>True when the archive's <c>byteorder</c> record says big-endian (storages are then byte-swapped on reading).</summary>
    public bool BigEndian { get; }

    private TorchCheckpointFile(StoredZipArchive zip)
    {
        _zip = zip;
        var pickles = zip.Entries.Keys.Where(n => n.EndsWith("/data.pkl", StringComparison.Ordinal) && n.Count(c => c == '/') == 1).ToList();
        if (pickles.Count != 1)
            throw new CheckpointFormatException(Path, pickles.Count == 0 ? "no PREFIX/data.pkl entry: not a PyTorch checkpoint" : $"{pickles.Count} data.pkl entries ({string.Join(", ", pickles)}); expected one");
        _prefix = pickles[0][..^"data.pkl".Length];
        var outside = zip.Entries.Keys.FirstOrDefault(n => !n.StartsWith(_prefix, StringComparison.Ordinal));
        if (outside is not null) throw new CheckpointFormatException(Path, $"entry name '{outside}' lies outside the checkpoint's folder '{_prefix}'; refused");
        if (zip.Entries.TryGetValue(_prefix + "byteorder", out var order))
        {
            string text = System.Text.Encoding.ASCII.GetString(zip.Read(order));
            BigEndian = text switch
            {
                "little" => false,
                "big" => true,
                _ => throw new CheckpointFormatException(Path, $"byteorder record says '{text}', expected 'little' or 'big'"),
            };
        }
        var pickle = zip.Read(zip.Entries[pickles[0]]).ToArray();
        try
        {
            Root = new PickleMachine(new CheckpointAllowList(Storage)).Load(pickle);
        }
        catch (PickleException e)
        {
            throw new CheckpointFormatException(Path, $"{pickles[0]} offset {e.Offset}: {e.Detail}");
        }
    }

    /// <summary>Opens and unpickles <paramref name="path"/>; a file that is not a zip checkpoint (a pre-1.6 torch.save) gets a clear error.</summary>
    public static TorchCheckpointFile Open(string path)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: checkpoint not found", path);
        if (!StoredZipArchive.LooksLikeZip(path))
            throw new CheckpointFormatException(path, "not a zip archive: only PyTorch's zip checkpoint format (torch.save since 1.6) is read; " +
                                                      "a legacy (pre-1.6) file cannot be read safely and is refused");
        var zip = StoredZipArchive.Open(path);
        try
        {
            return new TorchCheckpointFile(zip);
        }
        catch
        {
            zip.Dispose();
            throw;
        }
    }

    /// <summary>The storage behind a persistent id: the entry must exist and hold exactly count × element size bytes.</summary>
    private TorchStorage Storage(string key, StorageDType dtype, long count)
    {
        if (_storages.TryGetValue(key, out var known))
        {
            if (known.DType != dtype || known.ElementCount != count)
                throw new InvalidDataException($"storage '{key}' is referenced as {count} x {dtype} and as {known.ElementCount} x {known.DType}");
            return known;
        }
        string name = _prefix + "data/" + key;
        if (!_zip.Entries.TryGetValue(name, out var entry)) throw new InvalidDataException($"storage entry '{name}' is missing from the archive");
        if (count > entry.Length / dtype.SizeInBytes() || count * dtype.SizeInBytes() != entry.Length)
            throw new InvalidDataException($"storage '{key}' claims {count} x {dtype} ({dtype.SizeInBytes()} bytes each) but its entry holds {entry.Length} bytes");
        var storage = new TorchStorage(key, dtype, count, entry);
        _storages.Add(key, storage);
        return storage;
    }

    /// <summary>The start of <paramref name="storage"/>'s bytes (valid while this file is open); CRC-checked on first use.</summary>
    public byte* StorageBytes(TorchStorage storage) => _zip.Pointer(storage.Entry);

    public void Dispose() => _zip.Dispose();
}
