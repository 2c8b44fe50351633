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
}
