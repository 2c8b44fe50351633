namespace NbpEngine.Loader.TorchCheckpoint;

/// <summary>
/// A tensor as <c>torch._utils._rebuild_tensor_v2</c> describes it: a strided view into a storage, with
/// every element inside the storage (checked when it is made). Nothing is read until it is converted.
/// </summary>
public sealed class TorchTensor
{
    public TorchStorage Storage { get; }
    public long StorageOffset { get; }
    public long[] Shape { get; }
    public long[] Strides { get; }
    public long ElementCount { get; }

    public TorchTensor(TorchStorage storage, long storageOffset, long[] shape, long[] strides)
    {
        if (shape.Length != strides.Length) throw new InvalidDataException($"tensor has {shape.Length} sizes but {strides.Length} strides");
        if (storageOffset < 0) throw new InvalidDataException($"tensor storage offset {storageOffset} is negative");
        long count = 1, last = storageOffset;
        for (int d = 0; d < shape.Length; d++)
        {
            if (shape[d] < 0) throw new InvalidDataException($"tensor size {shape[d]} in dimension {d} is negative");
            if (strides[d] < 0) throw new InvalidDataException($"tensor stride {strides[d]} in dimension {d} is negative");
            try
            {
                count = checked(count * shape[d]);
                if (shape[d] > 0) last = checked(last + (shape[d] - 1) * strides[d]);
            }
            catch (OverflowException)
            {
                throw new InvalidDataException($"tensor of shape [{string.Join(", ", shape)}] has more elements than a 64-bit count holds");
            }
        }
        bool fits = count == 0 ? storageOffset <= storage.ElementCount : last < storage.ElementCount;
        if (!fits)
            throw new InvalidDataException($"tensor view (offset {storageOffset}, shape [{string.Join(", ", shape)}], strides [{string.Join(", ", strides)}]) " +
                                           $"reaches beyond the end of storage '{storage.Key}' ({storage.ElementCount} elements)");
        Storage = storage;
        StorageOffset = storageOffset;
        Shape = shape;
        Strides = strides;
        ElementCount = count;
    }

    /// <summary>True when the elements lie in storage order with no gaps (row-major strides).</summary>
    public bool IsContiguous
    {
        get
        {
            long expected = 1;
            for (int d = Shape.Length - 1; d >= 0; d--)
            {
                if (Shape[d] != 1 && Strides[d] != expected) return false;
                expected *= Shape[d];
            }
            return true;
        }
    }
}
