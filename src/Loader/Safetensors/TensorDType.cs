namespace NbpEngine.Loader.Safetensors;

/// <summary>Element types this engine reads from safetensors files.</summary>
public enum TensorDType
{
    F32,
    F16,
    BF16,
}

public static class TensorDTypeInfo
{
    /// <summary>Parses the safetensors dtype string; false for types the engine does not read.</summary>
    public static bool TryParse(string text, out TensorDType dtype)
    {
        switch (text)
        {
            case "F32": dtype = TensorDType.F32; return true;
            case "F16": dtype = TensorDType.F16; return true;
            case "BF16": dtype = TensorDType.BF16; return true;
            default: dtype = default; return false;
        }
    }

    public static int SizeInBytes(this TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => 4,
        TensorDType.F16 => 2,
        TensorDType.BF16 => 2,
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };

    public static string Name(this TensorDType dtype) => dtype switch
    {
        TensorDType.F32 => "F32",
        TensorDType.F16 => "F16",
        TensorDType.BF16 => "BF16",
        _ => throw new ArgumentOutOfRangeException(nameof(dtype)),
    };
}
