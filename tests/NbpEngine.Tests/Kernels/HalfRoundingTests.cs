using NbpEngine.Kernels;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Tests.Kernels;

/// <summary>
/// fp16 rounding must be round-to-nearest-even like torch's .half() and CUDA's cvt.rn: ILGPU's own
/// float-to-Half conversion is not (it disagreed with System.Half on about half of random values).
/// </summary>
public class HalfRoundingTests
{
    [Fact]
    public void KernelRoundingEqualsSystemHalf()
    {
        var rng = new Random(3);
        var special = new[] { 0f, -0f, 1f, 65504f, 65519.99f, 65520f, -70000f, 6.1035156e-05f, 6.1e-05f, 5.96e-08f, 2.98e-08f, 1e-10f, float.PositiveInfinity };
        foreach (var x in special.Concat(Enumerable.Range(0, 200_000).Select(i => (float)(rng.NextDouble() * 2 - 1) * MathF.Pow(10, i % 12 - 7))))
            Assert.True(DeviceMath.RoundToHalf(x).Equals((float)(System.Half)x), $"{x:R}: {DeviceMath.RoundToHalf(x):R} vs System.Half {(float)(System.Half)x:R}");
    }

    [Fact]
    public void UploadedHalfBitsEqualSystemHalf()
    {
        foreach (var x in new[] { -0.015570241f, 0.1f, 1f / 3, 1234.5678f })
            Assert.Equal((float)(System.Half)x, (float)DeviceWeights<F16Weights>.ToHalf(x));
    }
}
