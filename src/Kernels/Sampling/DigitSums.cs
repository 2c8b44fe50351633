using ILGPU;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Sampling;

/// <summary>
/// One thread's sums for the 15 candidates of a 16-ary search level over order-preserving keys: with the top bits of
/// the answer fixed (the prefix), candidate d (1..15) is the prefix with d in the level's 4 bits. An element counts
/// for candidate d when its key is at least the candidate, i.e. when its <see cref="Class"/> is at least d. Four bits a
/// pass instead of one: the sampler's two searches read the row 8 times each instead of 32.
/// </summary>
/// <remarks>
/// Exactness: candidate d's sum takes the same elements in the same order as a one-candidate pass would (an element
/// left out adds +0, which leaves a sum of non-negative values bit-identical), and rounding to nearest is monotone, so
/// each sum falls as d grows and the largest passing digit is what the bit-at-a-time search finds.
/// Fields, not an array: an indexed local array would live in local memory.
/// </remarks>
internal struct DigitSums
{
    public const int Bits = 4, Candidates = (1 << Bits) - 1;

    private float _m1;
    private float _m2;
    private float _m3;
    private float _m4;
    private float _m5;
    private float _m6;
    private float _m7;
    private float _m8;
    private float _m9;
    private float _m10;
    private float _m11;
    private float _m12;
    private float _m13;
    private float _m14;
    private float _m15;

    /// <summary>
    /// 0 when the key is below every candidate (its bits above the level are below the prefix's, or its digit is 0),
    /// <see cref="Candidates"/> when above them all, else its digit at <paramref name="shift"/>.
    /// </summary>
    public static int Class(uint key, uint prefix, int shift)
    {
        if (shift + Bits < 32)
        {
            uint high = key >> (shift + Bits), prefixHigh = prefix >> (shift + Bits);
            if (high != prefixHigh) return high > prefixHigh ? Candidates : 0;
        }
        return (int)((key >> shift) & Candidates);
    }

    /// <summary>Adds <paramref name="value"/> to the sums of candidates 1..<paramref name="digitClass"/>.</summary>
    public void Add(int digitClass, float value)
    {
        _m1 += digitClass >= 1 ? value : 0f;
        _m2 += digitClass >= 2 ? value : 0f;
        _m3 += digitClass >= 3 ? value : 0f;
        _m4 += digitClass >= 4 ? value : 0f;
        _m5 += digitClass >= 5 ? value : 0f;
        _m6 += digitClass >= 6 ? value : 0f;
        _m7 += digitClass >= 7 ? value : 0f;
        _m8 += digitClass >= 8 ? value : 0f;
        _m9 += digitClass >= 9 ? value : 0f;
        _m10 += digitClass >= 10 ? value : 0f;
        _m11 += digitClass >= 11 ? value : 0f;
        _m12 += digitClass >= 12 ? value : 0f;
        _m13 += digitClass >= 13 ? value : 0f;
        _m14 += digitClass >= 14 ? value : 0f;
        _m15 += digitClass >= 15 ? value : 0f;
    }

    /// <summary>The sums <see cref="Store"/> wrote at <paramref name="slot"/>, to go on adding to.</summary>
    public static DigitSums Load(ArrayView<float> sums, int slot) => new()
    {
        _m1 = sums[0 * SamplingMath.MassChunks + slot],
        _m2 = sums[1 * SamplingMath.MassChunks + slot],
        _m3 = sums[2 * SamplingMath.MassChunks + slot],
        _m4 = sums[3 * SamplingMath.MassChunks + slot],
        _m5 = sums[4 * SamplingMath.MassChunks + slot],
        _m6 = sums[5 * SamplingMath.MassChunks + slot],
        _m7 = sums[6 * SamplingMath.MassChunks + slot],
        _m8 = sums[7 * SamplingMath.MassChunks + slot],
        _m9 = sums[8 * SamplingMath.MassChunks + slot],
        _m10 = sums[9 * SamplingMath.MassChunks + slot],
        _m11 = sums[10 * SamplingMath.MassChunks + slot],
        _m12 = sums[11 * SamplingMath.MassChunks + slot],
        _m13 = sums[12 * SamplingMath.MassChunks + slot],
        _m14 = sums[13 * SamplingMath.MassChunks + slot],
        _m15 = sums[14 * SamplingMath.MassChunks + slot],
    };

    /// <summary>Writes candidate d's sum to <c>sums[(d - 1) * MassChunks + slot]</c>.</summary>
    public readonly void Store(ArrayView<float> sums, int slot)
    {
        sums[0 * SamplingMath.MassChunks + slot] = _m1;
        sums[1 * SamplingMath.MassChunks + slot] = _m2;
        sums[2 * SamplingMath.MassChunks + slot] = _m3;
        sums[3 * SamplingMath.MassChunks + slot] = _m4;
        sums[4 * SamplingMath.MassChunks + slot] = _m5;
        sums[5 * SamplingMath.MassChunks + slot] = _m6;
        sums[6 * SamplingMath.MassChunks + slot] = _m7;
        sums[7 * SamplingMath.MassChunks + slot] = _m8;
        sums[8 * SamplingMath.MassChunks + slot] = _m9;
        sums[9 * SamplingMath.MassChunks + slot] = _m10;
        sums[10 * SamplingMath.MassChunks + slot] = _m11;
        sums[11 * SamplingMath.MassChunks + slot] = _m12;
        sums[12 * SamplingMath.MassChunks + slot] = _m13;
        sums[13 * SamplingMath.MassChunks + slot] = _m14;
        sums[14 * SamplingMath.MassChunks + slot] = _m15;
    }
}
