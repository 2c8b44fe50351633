using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using NbpEngine.Kernels.Device;

namespace NbpEngine.Runtime.Cpu;

/// <summary>
/// GELU in its exact erf form, 0.5·x·(1 + erf(x/√2)) (MODEL.md §1), with an erf of our own so every
/// backend evaluates the same formula: the Maclaurin series to x^13 for |x| &lt; 0.5 (where the
/// A–S form loses relative accuracy to cancellation), Abramowitz–Stegun 7.1.26 (|error| ≤ 1.5e-7) beyond.
/// </summary>
public static unsafe class Activations
{
    // One definition of the formula and its constants, shared with the ILGPU kernels (DeviceMath).
    private const float P = DeviceMath.P, A1 = DeviceMath.A1, A2 = DeviceMath.A2, A3 = DeviceMath.A3, A4 = DeviceMath.A4, A5 = DeviceMath.A5;
    private const float T0 = DeviceMath.T0, T1 = DeviceMath.T1, T2 = DeviceMath.T2, T3 = DeviceMath.T3, T4 = DeviceMath.T4, T5 = DeviceMath.T5, T6 = DeviceMath.T6;
    private const float InvSqrt2 = DeviceMath.InvSqrt2, SmallLimit = DeviceMath.SeriesLimit;

    /// <summary>Scalar erf, the reference for the vector path (the kernels' own function).</summary>
    public static float Erf(float x) => DeviceMath.Erf(x);

    public static float Gelu(float x) => DeviceMath.Gelu(x);

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
