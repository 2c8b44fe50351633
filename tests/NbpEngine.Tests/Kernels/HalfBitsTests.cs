using NbpEngine.Kernels.Device;

namespace NbpEngine.Tests.Kernels;

/// <summary>The fp16 widening the step GEMM uses off CUDA (its CUDA branch is cvt.f32.f16) is exact for every bit pattern.</summary>
public class HalfBitsTests
{
    [Fact]
    public void EveryHalfWidensToTheFloatItEncodes()
    {
        for (uint bits = 0; bits <= 0xFFFF; bits++)
        {
            float expected = (float)BitConverter.UInt16BitsToHalf((ushort)bits), found = DeviceMath.HalfBitsToFloat(bits);
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(found), $"0x{bits:X4}");
            else Assert.True(BitConverter.SingleToUInt32Bits(expected) == BitConverter.SingleToUInt32Bits(found), $"0x{bits:X4}: {found} vs {expected}");
        }
    }

    /// <summary>The emulated mma's packing (DeviceMath.HalfBits) rounds like System.Half: every half, the midpoints between neighbours, overflow, subnormals.</summary>
    [Fact]
    public void FloatsNarrowToTheHalfBitsSystemHalfGives()
    {
        var values = new List<float> { 0f, -0f, 65504f, 65519.99f, 65520f, -70000f, float.PositiveInfinity, float.NegativeInfinity, 1e-8f, -3e-8f, 2.98e-8f, 5.96e-8f };
        var rng = new Random(3);
        for (int i = 0; i < 20000; i++) values.Add(BitConverter.Int32BitsToSingle(rng.Next()) * (rng.Next(2) == 0 ? 1 : -1));
        for (uint bits = 0; bits < 0x7C00; bits++)
        {
            float low = DeviceMath.HalfBitsToFloat(bits), high = DeviceMath.HalfBitsToFloat(bits + 1);
            values.Add(low);
            values.Add(low + (high - low) / 2); // a tie: rounds to the even neighbour
            values.Add(-(low + (high - low) / 3));
        }
        foreach (float v in values)
        {
            if (float.IsNaN(v)) continue;
            ushort expected = BitConverter.HalfToUInt16Bits((Half)v);
            Assert.True(expected == DeviceMath.HalfBits(v), $"{v:R}: 0x{DeviceMath.HalfBits(v):X4}, System.Half gives 0x{expected:X4}");
        }
        Assert.Equal(0x7E00u, DeviceMath.HalfBits(float.NaN) & 0x7FFFu);
    }
}
