namespace NbpEngine.Core;

/// <summary>How weight matrices are stored on an ILGPU device; accumulation is fp32 whatever the storage.</summary>
public enum WeightStorage
{
    F32,
    F16,
    BF16,
}
