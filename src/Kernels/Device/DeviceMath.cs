using ILGPU;
using ILGPU.Algorithms;

namespace NbpEngine.Kernels.Device;

/// <summary>
/// Scalar math usable inside kernels and on the host. The erf (Maclaurin series below 0.5,
/// Abramowitz–Stegun 7.1.26 above) is also the CPU backend's (Runtime/Cpu/Activations.cs uses these
/// constants for its vector path); LibDevice's erf would need the CUDA SDK at run time and would not
/// run on the CPU accelerator.
/// </summary>
public static class DeviceMath
{
    // Abramowitz–Stegun 7.1.26 for |x| >= SeriesLimit
    public const float P = 0.3275911f;
    public const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    // Maclaurin series for |x| < SeriesLimit: 2/√π · (-1)^n / (n! (2n+1)), n = 0..6
    public const float T0 = 1.1283791671f, T1 = -0.3761263890f, T2 = 0.1128379167f, T3 = -0.0268661706f;
    public const float T4 = 0.0052239776f, T5 = -0.0008548327f, T6 = 0.0001205533f;
    public const float SeriesLimit = 0.5f;
    public const float InvSqrt2 = 0.70710678118654752f;

    public static float Erf(float x)
    {
        float ax = XMath.Abs(x);
        if (ax < SeriesLimit)
        {
            float x2 = x * x;
            return x * ((((((T6 * x2 + T5) * x2 + T4) * x2 + T3) * x2 + T2) * x2 + T1) * x2 + T0);
        }
        float t = 1f / (1f + P * ax);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        float y = 1f - poly * XMath.Exp(-ax * ax);
        return x < 0 ? -y : y;
    }

    public static float Gelu(float x) => 0.5f * x * (1f + Erf(x * InvSqrt2));

    /// <summary>
    /// x rounded to the nearest fp16 value, ties to even (as torch's .half() and CUDA's cvt.rn), returned
    /// as fp32. ILGPU's own float-to-Half conversion does not round to nearest on the CPU, so kernels
    /// and uploads use this (or System.Half on the host), never (ILGPU.Half)x.
    /// </summary>
    public static float RoundToHalf(float x)
    {
        float ax = XMath.Abs(x);
        if (ax >= 65520f) return x > 0 ? float.PositiveInfinity : x < 0 ? float.NegativeInfinity : x; // past the largest half (NaN passes through)
        if (ax < 6.103515625e-05f)
        {
            // subnormal halves: multiples of 2^-24
            float scaled = x * 16777216f;
            return XMath.Round(scaled) / 16777216f; // Math.Round rounds half to even
        }
        uint bits = (uint)Interop.FloatAsInt(x);
        bits += 0x0FFFu + ((bits >> 13) & 1u); // keep 10 of 23 mantissa bits, ties to even
        return Interop.IntAsFloat(bits & 0xFFFFE000u);
    }

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
