namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>A storage a checkpoint's pickle refers to: the zip entry holding its <see cref="ElementCount"/> elements.</summary>
public sealed record TorchStorage(string Key, StorageDType DType, long ElementCount, ZipEntry Entry);
