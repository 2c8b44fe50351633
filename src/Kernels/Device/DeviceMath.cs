using ILGPU;
using ILGPU.Algorithms;
using ILGPU.Runtime.Cuda;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Device;

/// <summary>
/// Scalar math for kernels: GELU through Core's one erf (ActivationMath) compiled with ILGPU's exp, fp16
/// rounding, and the samplers' sortable float key.
/// </summary>
public static class DeviceMath
{
    /// <summary>ILGPU's exp (ex2.approx-based on CUDA; MathF on the CPU accelerator).</summary>
    public struct XMathExp : IExp
    {
        public readonly float Exp(float x) => XMath.Exp(x);
    }

    public static float Gelu(float x) => ActivationMath.Gelu<XMathExp>(x);

    /// <summary>The samplers' product on the device: <c>mul.rn.f32</c>, which ptxas never fuses with the add that follows.</summary>
    public struct RoundedProduct : IRoundedProduct
    {
        public readonly float Mul(float a, float b)
        {
            if (CudaAsm.IsSupported)
            {
                CudaAsm.Emit("mul.rn.f32 %0, %1, %2;", out float product, a, b);
                return product;
            }
            return a * b;
        }
    }

    /// <summary>
    /// keep·own − t·unconditional with each product and the difference rounded to fp32 apart (three roundings), as the
    /// host's Guidance.Blend and PyTorch compute it. On CUDA as mul.rn/sub.rn: plain mul and sub may be contracted into an
    /// fma by ptxas, which rounds once and would differ in the last bit.
    /// </summary>
    public static float GuidedLogit(float keep, float own, float t, float unconditional)
    {
        if (CudaAsm.IsSupported)
        {
            CudaAsm.Emit("{ .reg .f32 a, b; mul.rn.f32 a, %1, %2; mul.rn.f32 b, %3, %4; sub.rn.f32 %0, a, b; }", out float result, keep, own, t, unconditional);
            return result;
        }
        return keep * own - t * unconditional;
    }

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

    /// <summary>
    /// The fp16 bit pattern of x rounded to nearest, ties to even (what cvt.rn.f16.f32 gives): overflow to infinity,
    /// subnormals kept, NaN stays NaN (as the quiet NaN 0x7E00 with x's sign).
    /// </summary>
    public static uint HalfBits(float x)
    {
        float r = RoundToHalf(x);
        uint bits = (uint)Interop.FloatAsInt(r), sign = (bits >> 16) & 0x8000u;
        uint exponent = (bits >> 23) & 0xFFu;
        if (exponent == 0xFFu) return sign | ((bits & 0x7FFFFFu) != 0 ? 0x7E00u : 0x7C00u);
        float magnitude = XMath.Abs(r);
        if (magnitude < 6.103515625e-05f) return sign | (uint)(magnitude * 16777216f); // subnormal: an exact multiple of 2^-24
        return sign | ((exponent - 112) << 10) | ((bits >> 13) & 0x3FFu);
    }

    /// <summary>An fp16 bit pattern (low 16 bits) as the float it encodes, exactly: subnormals, infinities and NaN included.</summary>
    public static float HalfBitsToFloat(uint half)
    {
        uint sign = (half & 0x8000u) << 16, exponent = (half >> 10) & 0x1Fu, mantissa = half & 0x3FFu;
        if (exponent == 0)
        {
            float subnormal = mantissa * 5.9604644775390625e-08f; // mantissa · 2^-24, exact
            return sign != 0 ? -subnormal : subnormal;
        }
        uint bits = exponent == 0x1Fu ? sign | 0x7F800000u | (mantissa << 13) : sign | ((exponent + 112) << 23) | (mantissa << 13);
        return Interop.IntAsFloat(bits);
    }

    /// <summary>Maps a float to a uint whose unsigned order is the float order (NaN aside).</summary>
    public static uint OrderedKey(float value) => SortableFloat.Key((uint)Interop.FloatAsInt(value));

    public static float FromOrderedKey(uint key) => Interop.IntAsFloat(SortableFloat.Bits(key));
}
