namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>Element types of PyTorch storages a checkpoint may hold (the legacy typed-storage class names).</summary>
public enum StorageDType
{
    Float32,
    Float16,
    BFloat16,
    Float64,
    Int64,
    Int32,
    Int16,
    Int8,
    UInt8,
    Bool,
}

public static class StorageDTypes
{
    /// <summary>torch.&lt;Name&gt;Storage class names, as the persistent ids of torch.save name them.</summary>
    public static readonly IReadOnlyDictionary<string, StorageDType> ByClassName = new Dictionary<string, StorageDType>(StringComparer.Ordinal)
    {
        ["FloatStorage"] = StorageDType.Float32, ["HalfStorage"] = StorageDType.Float16, ["BFloat16Storage"] = StorageDType.BFloat16,
        ["DoubleStorage"] = StorageDType.Float64, ["LongStorage"] = StorageDType.Int64, ["IntStorage"] = StorageDType.Int32,
        ["ShortStorage"] = StorageDType.Int16, ["CharStorage"] = StorageDType.Int8, ["ByteStorage"] = StorageDType.UInt8, ["BoolStorage"] = StorageDType.Bool,
    };

    public static int SizeInBytes(this StorageDType dtype) => dtype switch
    {
        StorageDType.Float64 or StorageDType.Int64 => 8,
        StorageDType.Float32 or StorageDType.Int32 => 4,
        StorageDType.Float16 or StorageDType.BFloat16 or StorageDType.Int16 => 2,
        _ => 1,
    };
}
