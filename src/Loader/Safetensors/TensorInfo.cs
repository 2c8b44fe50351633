namespace NbpEngine.Loader.Safetensors;

/// <summary>One tensor entry of a safetensors header. Offsets are relative to the start of the byte buffer.</summary>
public sealed record TensorInfo(string Name, TensorDType DType, long[] Shape, long Begin, long End)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (var d in Shape) n *= d;
            return n;
        }
    }

    public long ByteLength => End - Begin;

    public string ShapeText => FormatShape(Shape);

    public static string FormatShape(IReadOnlyList<long> shape) => "[" + string.Join(", ", shape) + "]";
}
