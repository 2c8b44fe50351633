using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NbpEngine.Core;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// GELU in its exact erf form, 0.5·x·(1 + erf(x/√2)) (MODEL.md §1), with an erf of our own so every
/// backend evaluates the same formula: the Maclaurin series to x^13 for |x| &lt; 0.5 (where the
/// A–S form loses relative accuracy to cancellation), Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7) beyond.
/// </summary>
public static unsafe class Activations
{
    // One definition of the formula and its constants, shared with the ILGPU kernels (Core's ActivationMath).
    private const float P = ActivationMath.P, A1 = ActivationMath.A1, A2 = ActivationMath.A2, A3 = ActivationMath.A3, A4 = ActivationMath.A4, A5 = ActivationMath.A5;
    private const float T0 = ActivationMath.T0, T1 = ActivationMath.T1, T2 = ActivationMath.T2, T3 = ActivationMath.T3, T4 = ActivationMath.T4, T5 = ActivationMath.T5, T6 = ActivationMath.T6;
    private const float InvSqrt2 = ActivationMath.InvSqrt2, SmallLimit = ActivationMath.SeriesLimit;

    private struct MathFExp : IExp
    {
        public readonly float Exp(float x) => MathF.Exp(x);
    }

    /// <summary>Scalar erf, the reference for the vector path (the kernels' formula, with MathF's exp).</summary>
    public static float Erf(float x) => ActivationMath.Erf<MathFExp>(x);

    public static float Gelu(float x) => ActivationMath.Gelu<MathFExp>(x);

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
