namespace NbpEngine.Core;

/// <summary>
/// Counter-based uniform numbers: u = f(seed, step, row), no state. Any backend, in any row order
/// and on any thread, draws the same u for the same (seed, step, row), which is what makes sampling
/// reproducible and identical across backends. SplitMix64's finaliser as the mixing function.
/// </summary>
public static class CounterRandom
{
    public static double Uniform(ulong seed, int step, int row)
    {
        ulong x = Mix(seed + 0x9E3779B97F4A7C15UL * ((ulong)(uint)step + 1));
        x = Mix(x ^ (0xD1B54A32D192ED03UL * ((ulong)(uint)row + 1)));
        return (x >> 11) * (1.0 / (1UL << 53)); // [0, 1), 53 random bits
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
