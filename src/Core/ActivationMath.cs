namespace NbpEngine.Core;

/// <summary>An exp the caller's compiler can run: MathF on the CPU, XMath inside ILGPU kernels.</summary>
public interface IExp
{
    float Exp(float x);
}

/// <summary>
/// GELU through one erf approximation (Maclaurin series below 0.5, Abramowitz–Stegun 7.1.26 above), written
/// once for the CPU backend and the ILGPU kernels: plain float math, generic over the exp so that a kernel
/// compiles it with ILGPU's exp and the CPU with MathF's. LibDevice's erf would need the CUDA SDK at run time
/// and would not run on ILGPU's CPU accelerator. The CPU's vector path uses the same constants.
/// </summary>
public static class ActivationMath
{
    // Abramowitz–Stegun 7.1.26 for |x| >= SeriesLimit
    public const float P = 0.3275911f;
    public const float A1 = 0.254829592f, A2 = -0.284496736f, A3 = 1.421413741f, A4 = -1.453152027f, A5 = 1.061405429f;
    // Maclaurin series for |x| < SeriesLimit: 2/√π · (-1)^n / (n! (2n+1)), n = 0..6
    public const float T0 = 1.1283791671f, T1 = -0.3761263890f, T2 = 0.1128379167f, T3 = -0.0268661706f;
    public const float T4 = 0.0052239776f, T5 = -0.0008548327f, T6 = 0.0001205533f;
    public const float SeriesLimit = 0.5f;
    public const float InvSqrt2 = 0.70710678118654752f;

    public static float Erf<TExp>(float x) where TExp : struct, IExp
    {
        float ax = x < 0 ? -x : x;
        if (ax < SeriesLimit)
        {
            float x2 = x * x;
            return x * ((((((T6 * x2 + T5) * x2 + T4) * x2 + T3) * x2 + T2) * x2 + T1) * x2 + T0);
        }
        float t = 1f / (1f + P * ax);
        float poly = ((((A5 * t + A4) * t + A3) * t + A2) * t + A1) * t;
        float y = 1f - poly * default(TExp).Exp(-ax * ax);
        return x < 0 ? -y : y;
    }

    public static float Gelu<TExp>(float x) where TExp : struct, IExp => 0.5f * x * (1f + Erf<TExp>(x * InvSqrt2));
}
