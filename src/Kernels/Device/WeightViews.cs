using ILGPU;
using Half = ILGPU.Half;

namespace NbpEngine.Kernels.Device;

/// <summary>
/// How a kernel reads a weight element as fp32. Kernels are generic over this struct, so one
/// kernel body serves fp32 weights and fp16/bf16-stored weights (fp32 accumulation in all cases).
/// </summary>
public interface IWeightView
{
    float Load(long index);
}

/// <summary>fp32 weights.</summary>
public struct F32Weights : IWeightView
{
    public ArrayView<float> Data;
    public F32Weights(ArrayView<float> data) => Data = data;
    public readonly float Load(long index) => Data[index];
}

/// <summary>fp16-stored weights, widened on load (cvt.f32.f16 on CUDA).</summary>
public struct F16Weights : IWeightView
{
    public ArrayView<Half> Data;
    public F16Weights(ArrayView<Half> data) => Data = data;
    public readonly float Load(long index) => (float)Data[index];
}

/// <summary>bf16-stored weights as raw 16-bit patterns (ILGPU has no bfloat16): the upper half of an fp32.</summary>
public struct BF16Weights : IWeightView
{
    public ArrayView<ushort> Data;
    public BF16Weights(ArrayView<ushort> data) => Data = data;
    public readonly float Load(long index) => Interop.IntAsFloat((uint)Data[index] << 16);
}
