namespace NbpEngine.Core;

/// <summary>
/// exp for the samplers, in fp32, one formula for the CPU sampler and the sampling kernel so both weigh every logit
/// identically: e^x = 2^n · e^r with n = round(x·log2 e) and r = x - n·ln 2 (Cody-Waite: ln 2 split in a part whose
/// product with n is exact and a small remainder), |r| ≤ ln2/2, e^r by its degree-7 Taylor polynomial (error below
/// 1e-8 before rounding; measured within two ulps over [-87, 0]). Plain float arithmetic; the caller builds 2^n from
/// <see cref="ExpParts"/>' scale bits with its own bit cast (BitConverter on the CPU, ILGPU's Interop in kernels), as
/// <see cref="SortableFloat"/> does. Replaces the double-precision exp that cost the GPU sampler ~4,000 instructions per
/// call, in each of 32 search passes (issue 12).
/// </summary>
public static class SamplingMath
{
    private const float Log2E = 1.44269504088896341f;
    // ln 2 = Ln2High + Ln2Low; Ln2High has 16 significant bits, so n·Ln2High is exact for |n| < 2^8
    private const float Ln2High = 0.693145751953125f, Ln2Low = 1.42860682030941723e-06f;
    private const float C2 = 1f / 2, C3 = 1f / 6, C4 = 1f / 24, C5 = 1f / 120, C6 = 1f / 720, C7 = 1f / 5040;

    /// <summary>
    /// For x ≤ 0 (a logit minus the row's maximum): e^r, and in <paramref name="scaleBits"/> the fp32 bits of 2^n
    /// (0 when e^x is below the smallest normal float, so the weight is 0).
    /// </summary>
    public static float ExpParts(float x, out uint scaleBits)
    {
        float t = x * Log2E;
        if (!(t > -126f))
        {
            scaleBits = 0;
            return 0f;
        }
        int n = (int)(t - 0.5f); // t ≤ 0: rounds to nearest (ties away from zero)
        float r = x - n * Ln2High - n * Ln2Low;
        scaleBits = (uint)(n + 127) << 23;
        return 1f + r * (1f + r * (C2 + r * (C3 + r * (C4 + r * (C5 + r * (C6 + r * C7))))));
    }
}
