namespace NbpEngine.Core;

/// <summary>
/// Counter-based uniform numbers: u = f(seed, step, row), no state. Any backend, in any row order
/// and on any thread, draws the same u for the same (seed, step, row), which is what makes sampling
/// reproducible and identical across backends. SplitMix64's finaliser as the mixing function.
/// </summary>
public static class CounterRandom
{
    /// <summary>
    /// u in [0, 1) with 24 random bits: a multiple of 2^-24, exact in fp32, made without floating-point arithmetic but
    /// one exact conversion and one exact scaling, so the sampling kernel needs no fp64 for it.
    /// </summary>
    public static float Uniform(ulong seed, int step, int row)
        => (int)(Bits(seed, step, row) >> 40) * (1f / (1 << 24)); // int, not uint: ILGPU converts a uint to float through fp64

    /// <summary>64 random bits for (seed, step, row): the same on every run, process and machine.</summary>
    public static ulong Bits(ulong seed, int step, int row)
    {
        ulong x = Mix(seed + 0x9E3779B97F4A7C15UL * ((ulong)(uint)step + 1));
        return Mix(x ^ (0xD1B54A32D192ED03UL * ((ulong)(uint)row + 1)));
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
