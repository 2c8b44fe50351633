using ILGPU;
using ILGPU.Runtime.Cuda;
using Half = ILGPU.Half;

namespace NbpEngine.Kernels.Device;

/// <summary>Four floats, 16 bytes: one LDG.128 when the address is 16-byte aligned.</summary>
public struct Float4
{
    public float X, Y, Z, W;
}

/// <summary>16 raw bytes as four words (eight fp16 or bf16 values), loaded as one LDG.128.</summary>
public struct Bits128
{
    public uint X, Y, Z, W;
}

/// <summary>
/// Eight consecutive weights as stored, before <see cref="IWeightView.Widen"/>: 16 bytes in <see cref="Low"/> for
/// fp16/bf16 storage, 32 in <see cref="Low"/> and <see cref="High"/> for fp32. A kernel that fetches the next weights
/// a pass ahead holds them in this form: half the registers of widened fp16 values.
/// </summary>
public struct Raw8
{
    public Bits128 Low, High;
}

/// <summary>Eight consecutive weights widened to fp32, k..k+7 in V0..V7.</summary>
public struct Vec8
{
    public float V0, V1, V2, V3, V4, V5, V6, V7;
}

/// <summary>
/// How a kernel reads weights as fp32. Kernels are generic over this struct, so one kernel body serves fp32
/// weights and fp16/bf16-stored weights (fp32 accumulation in all cases). <see cref="Load8"/> reads 16 bytes
/// at a time (one LDG.128 for 16-bit storage, two for fp32): the step GEMM's weight stream, which splits it into
/// <see cref="Fetch8"/> and <see cref="Widen"/> to have the next pass's weights in flight while it multiplies.
/// </summary>
public interface IWeightView
{
    float Load(long index);

    /// <summary>Elements index..index+7; <paramref name="index"/> must be a multiple of 8 inside the vector view.</summary>
    Vec8 Load8(long index);

    /// <summary>The bytes of elements index..index+7, not yet widened (<see cref="Load8"/> is <c>Widen(Fetch8(index))</c>).</summary>
    Raw8 Fetch8(long index);

    /// <summary>Eight fetched weights as fp32, exactly.</summary>
    Vec8 Widen(Raw8 raw);

    /// <summary>
    /// Whether <see cref="Fetch8"/>'s <see cref="Raw8.Low"/> already holds the eight weights as fp16 bits, what a tensor
    /// core takes as it is (a constant of the struct: ILGPU folds the test away); otherwise they are widened and rounded.
    /// </summary>
    bool HalfStorage { get; }
}

/// <summary>fp32 weights.</summary>
public struct F32Weights : IWeightView
{
    public ArrayView<float> Data;
    /// <summary>The same memory as 16-byte vectors (the whole ones).</summary>
    public ArrayView<Float4> Vectors;

    public F32Weights(ArrayView<float> data)
    {
        Data = data;
        Vectors = data.SubView(0, data.Length / 4 * 4).Cast<Float4>();
    }

    public readonly float Load(long index) => Data[index];

    public readonly bool HalfStorage => false;

    public readonly Vec8 Load8(long index) => Widen(Fetch8(index));

    public readonly Raw8 Fetch8(long index)
    {
        Float4 a = Vectors[index / 4], b = Vectors[index / 4 + 1];
        return new Raw8 { Low = Bits(a), High = Bits(b) };
    }

    public readonly Vec8 Widen(Raw8 raw) => new()
    {
        V0 = Interop.IntAsFloat(raw.Low.X), V1 = Interop.IntAsFloat(raw.Low.Y), V2 = Interop.IntAsFloat(raw.Low.Z), V3 = Interop.IntAsFloat(raw.Low.W),
        V4 = Interop.IntAsFloat(raw.High.X), V5 = Interop.IntAsFloat(raw.High.Y), V6 = Interop.IntAsFloat(raw.High.Z), V7 = Interop.IntAsFloat(raw.High.W),
    };

    /// <summary>Four floats' bit patterns (a reinterpretation: no instruction on the GPU).</summary>
    private static Bits128 Bits(Float4 v) => new()
    {
        X = Interop.FloatAsInt(v.X), Y = Interop.FloatAsInt(v.Y), Z = Interop.FloatAsInt(v.Z), W = Interop.FloatAsInt(v.W),
    };
}

/// <summary>fp16-stored weights, widened on load (cvt.f32.f16 on CUDA).</summary>
public struct F16Weights : IWeightView
{
    public ArrayView<Half> Data;
    public ArrayView<Bits128> Vectors;

    public F16Weights(ArrayView<Half> data)
    {
        Data = data;
        Vectors = data.SubView(0, data.Length / 8 * 8).Cast<Bits128>();
    }

    public readonly float Load(long index) => (float)Data[index];

    public readonly bool HalfStorage => true;

    public readonly Vec8 Load8(long index) => Widen(Fetch8(index));

    public readonly Raw8 Fetch8(long index) => new() { Low = Vectors[index / 8] };

    public readonly Vec8 Widen(Raw8 raw)
    {
        var v = raw.Low;
        HalfPair(v.X, out float v0, out float v1);
        HalfPair(v.Y, out float v2, out float v3);
        HalfPair(v.Z, out float v4, out float v5);
        HalfPair(v.W, out float v6, out float v7);
        return new Vec8 { V0 = v0, V1 = v1, V2 = v2, V3 = v3, V4 = v4, V5 = v5, V6 = v6, V7 = v7 };
    }

    /// <summary>A word of two fp16 values (lower index in the low half) as two floats, exactly.</summary>
    private static void HalfPair(uint pair, out float low, out float high)
    {
        if (CudaAsm.IsSupported)
        {
            Ref<float> lo = 0f, hi = 0f;
            Input<uint> bits = pair;
            CudaAsm.EmitRef("{ .reg .b16 l, h; mov.b32 {l, h}, %2; cvt.f32.f16 %0, l; cvt.f32.f16 %1, h; }", ref lo, ref hi, ref bits);
            low = lo.Value;
            high = hi.Value;
        }
        else
        {
            low = DeviceMath.HalfBitsToFloat(pair & 0xFFFFu);
            high = DeviceMath.HalfBitsToFloat(pair >> 16);
        }
    }
}

/// <summary>bf16-stored weights as raw 16-bit patterns (ILGPU has no bfloat16): the upper half of an fp32.</summary>
public struct BF16Weights : IWeightView
{
    public ArrayView<ushort> Data;
    public ArrayView<Bits128> Vectors;

    public BF16Weights(ArrayView<ushort> data)
    {
        Data = data;
        Vectors = data.SubView(0, data.Length / 8 * 8).Cast<Bits128>();
    }

    public readonly float Load(long index) => Interop.IntAsFloat((uint)Data[index] << 16);

    public readonly bool HalfStorage => false;

    public readonly Vec8 Load8(long index) => Widen(Fetch8(index));

    public readonly Raw8 Fetch8(long index) => new() { Low = Vectors[index / 8] };

    public readonly Vec8 Widen(Raw8 raw)
    {
        var v = raw.Low;
        return new Vec8
        {
            V0 = Interop.IntAsFloat(v.X << 16), V1 = Interop.IntAsFloat(v.X & 0xFFFF0000u),
            V2 = Interop.IntAsFloat(v.Y << 16), V3 = Interop.IntAsFloat(v.Y & 0xFFFF0000u),
            V4 = Interop.IntAsFloat(v.Z << 16), V5 = Interop.IntAsFloat(v.Z & 0xFFFF0000u),
            V6 = Interop.IntAsFloat(v.W << 16), V7 = Interop.IntAsFloat(v.W & 0xFFFF0000u),
        };
    }
}
