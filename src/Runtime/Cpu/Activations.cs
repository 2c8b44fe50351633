using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// GELU in its exact erf form, 0.5·x·(1 + erf(x/√2)) (MODEL.md §1), with an erf of our own so every
/// backend evaluates the same formula: the Maclaurin series to x^13 for |x| &lt; 0.5 (where the
/// A–S form loses relative accuracy to cancellation), Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7) beyond.
/// </summary>
public static unsafe class Activations
{
    private const float P = 0.3275911f;
    private const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    private const float InvSqrt2 = 0.70710678118654752f;
    private const float SmallLimit = 0.5f;
    // 2/√π · (-1)^n / (n! (2n+1)), n = 0..6
    private const float T0 = 1.1283791671f, T1 = -0.3761263890f, T2 = 0.1128379167f, T3 = -0.0268661706f;
    private const float T4 = 0.0052239776f, T5 = -0.0008548327f, T6 = 0.0001205533f;

    /// <summary>Scalar erf, the reference for the vector path.</summary>
    public static float Erf(float x)
    {
        float ax = MathF.Abs(x);
        if (ax < SmallLimit)
        {
            float x2 = x * x;
            return x * ((((((T6 * x2 + T5) * x2 + T4) * x2 + T3) * x2 + T2) * x2 + T1) * x2 + T0);
        }
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
            var z2 = z * z;
            var series = z * ((((((Vector512.Create(T6) * z2 + Vector512.Create(T5)) * z2 + Vector512.Create(T4)) * z2 + Vector512.Create(T3)) * z2
                + Vector512.Create(T2)) * z2 + Vector512.Create(T1)) * z2 + Vector512.Create(T0));
            e = Vector512.ConditionalSelect(Vector512.LessThan(az, Vector512.Create(SmallLimit)), series, e);
            Vector512.Store(half * x * (one + e), values + i);
        }
        for (; i < count; i++) values[i] = Gelu(values[i]);
    }
}
