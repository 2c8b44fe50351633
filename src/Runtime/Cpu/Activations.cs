using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// GELU in its exact erf form, 0.5·x·(1 + erf(x/√2)) (MODEL.md §1), with an erf of our own
/// (Abramowitz–Stegun 7.1.26, |error| ≤ 1.5e-7) so every backend can evaluate the same formula.
/// </summary>
public static unsafe class Activations
{
    private const float P = 0.3275911f;
    private const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    private const float InvSqrt2 = 0.70710678118654752f;

    /// <summary>Scalar erf, the reference for the vector path.</summary>
    public static float Erf(float x)
    {
        float ax = MathF.Abs(x);
        float t = 1f / (1f + P * ax);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        float y = 1f - poly * MathF.Exp(-ax * ax);
        return x < 0 ? -y : y;
    }

    public static float Gelu(float x) => 0.5f * x * (1f + Erf(x * InvSqrt2));

    /// <summary>values[i] = GELU(values[i]) in place, Vector512 with a scalar tail.</summary>
    public static void GeluInPlace(float* values, int count)
    {
        int i = 0;
        var half = Vector512.Create(0.5f);
        var one = Vector512.Create(1f);
        for (; i + 16 <= count; i += 16)
        {
            var x = Vector512.Load(values + i);
            var z = x * Vector512.Create(InvSqrt2);
            var az = Vector512.Abs(z);
            var t = one / (one + Vector512.Create(P) * az);
            var poly = ((((Vector512.Create(A5) * t + Vector512.Create(A4)) * t + Vector512.Create(A3)) * t + Vector512.Create(A2)) * t + Vector512.Create(A1)) * t;
            var e = one - poly * Vector512.Exp(-(az * az));
            e = Vector512.ConditionalSelect(Vector512.LessThan(z, Vector512<float>.Zero), -e, e);
            Vector512.Store(half * x * (one + e), values + i);
        }
        for (; i < count; i++) values[i] = Gelu(values[i]);
    }
}
