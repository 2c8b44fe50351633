using ILGPU;
using ILGPU.Algorithms;

namespace NbpEngine.Kernels.Device;

/// <summary>
/// Scalar math usable inside kernels. The erf is the CPU backend's (Runtime/Cpu/Activations.cs):
/// Maclaurin series below 0.5, Abramowitz–Stegun 7.1.26 above; LibDevice's erf would need the CUDA
/// SDK at run time and would not run on the CPU accelerator.
/// </summary>
public static class DeviceMath
{
    private const float P = 0.3275911f;
    private const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    private const float T0 = 1.1283791671f, T1 = -0.3761263890f, T2 = 0.1128379167f, T3 = -0.0268661706f;
    private const float T4 = 0.0052239776f, T5 = -0.0008548327f, T6 = 0.0001205533f;

    public static float Erf(float x)
    {
        float ax = XMath.Abs(x);
        if (ax < 0.5f)
        {
            float x2 = x * x;
            return x * ((((((T6 * x2 + T5) * x2 + T4) * x2 + T3) * x2 + T2) * x2 + T1) * x2 + T0);
        }
        float t = 1f / (1f + P * ax);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        float y = 1f - poly * XMath.Exp(-ax * ax);
        return x < 0 ? -y : y;
    }

    public static float Gelu(float x) => 0.5f * x * (1f + Erf(x * 0.70710678118654752f));

    /// <summary>Maps a float to a uint whose unsigned order is the float order (NaN aside).</summary>
    public static uint OrderedKey(float value)
    {
        uint bits = (uint)Interop.FloatAsInt(value);
        return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
    }

    public static float FromOrderedKey(uint key)
    {
        uint bits = (key & 0x80000000u) != 0 ? key & 0x7FFFFFFFu : ~key;
        return Interop.IntAsFloat(bits);
    }
}
