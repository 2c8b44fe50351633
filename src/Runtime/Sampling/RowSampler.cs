using NbpEngine.Core;
using System.Numerics.Tensors;
using System.Runtime.InteropServices;

namespace NbpEngine.Runtime.Sampling;

/// <summary>
/// Samples one row of logits exactly as MODEL.md §6 describes, in fp32 and in the sampling kernel's order of arithmetic
/// (Core's SamplingMath: the same weights, masses summed by the same chunks in the same order, the same searches), so
/// the CPU and the device draw the same token from the same logits and u, bit for bit. Scratch is supplied by the
/// caller so the steady state allocates nothing.
/// </summary>
public static class RowSampler
{
    /// <summary>
    /// Draws a token from <paramref name="logits"/> with uniform <paramref name="u"/> in [0, 1).
    /// Ties at the top-p cut are resolved as a stable descending sort would (lower index first);
    /// the draw walks survivors in ascending index order.
    /// </summary>
    /// <param name="logits">one row of logits</param>
    /// <param name="settings">the filtering rule</param>
    /// <param name="u">uniform in [0, 1), from CounterRandom</param>
    /// <param name="scaled">scratch, at least vocabulary length</param>
    /// <param name="keys">scratch, at least vocabulary length</param>
    /// <exception cref="NonFiniteLogitsException">a logit is NaN or infinite (broken weights): no token can be drawn honestly</exception>
    public static int Sample(ReadOnlySpan<float> logits, in SamplingSettings settings, float u, Span<float> scaled, Span<ulong> keys)
    {
        if (!TensorPrimitives.IsFiniteAll(logits)) throw NonFiniteLogitsException.Of(logits);
        if (settings.Greedy) return ArgMax(logits);
        int vocab = logits.Length;
        var z = scaled[..vocab];
        TensorPrimitives.Divide(logits, settings.Temperature, z);
        // a temperature so small that logits / T overflows float32: the draw is its T -> 0 limit, the argmax
        if (!TensorPrimitives.IsFiniteAll<float>(z)) return ArgMax(logits);

        // top-k: the k-th largest value is the threshold; ties with it survive.
        float threshold = float.NegativeInfinity;
        if (settings.TopK > 0 && settings.TopK < vocab)
        {
            var work = MemoryMarshal.Cast<ulong, float>(keys)[..vocab];
            z.CopyTo(work);
            threshold = Select.KthLargest(work, settings.TopK);
        }
        float max = TensorPrimitives.Max(z);
        int chunk = SamplingMath.ChunkSize(vocab);

        // top-p: the cut is the largest key whose mass from the top exceeds p·total in the kernel's arithmetic (the kernel
        // finds it by a bitwise search; here a guess from a double-precision cumulative over the sorted survivors, then
        // checked and moved to the neighbouring distinct keys with exact fp32 masses until it is that key: the mass is a
        // monotone step function of the key, so the first key that passes with its larger neighbour failing is the one)
        float cutValue = float.NegativeInfinity;
        int cutIndex = int.MaxValue;
        if (settings.TopP < 1f)
        {
            int n = 0;
            for (int i = 0; i < vocab; i++)
                if (z[i] >= threshold) keys[n++] = SortKey(z[i], i);
            var sorted = keys[..n];
            sorted.Sort(); // value descending, index ascending
            float total = Mass(z, threshold, max, chunk, 0u), target = settings.TopP * total;
            if (!(total > target)) goto draw; // p so close to 1 that p·total rounds to the total: no cut, as in the kernel
            int at = GuessCut(sorted, max, settings.TopP);
            at = FirstOfRun(sorted, at);
            if (Mass(z, threshold, max, chunk, KeyOf(sorted[at])) > target)
                while (at > 0 && Mass(z, threshold, max, chunk, KeyOf(sorted[FirstOfRun(sorted, at - 1)])) > target) at = FirstOfRun(sorted, at - 1);
            else
                do at = NextRun(sorted, at); // the smallest key's mass is the total, which exceeds the target
                while (at < n - 1 && !(Mass(z, threshold, max, chunk, KeyOf(sorted[at])) > target));
            uint key = KeyOf(sorted[at]);
            cutValue = BitConverter.UInt32BitsToSingle(SortableFloat.Bits(key));
            float before = key == uint.MaxValue ? 0f : Mass(z, threshold, max, chunk, key + 1);
            int needed = SamplingMath.TiesNeeded(target, before, Weight(cutValue - max)), seen = 0;
            for (int i = 0; i < vocab; i++)
                if (z[i] == cutValue && ++seen == needed) { cutIndex = i; break; }
        }

        // Draw by inverse CDF over survivors in index order: chunk masses first, whole chunks skipped by them.
        draw:
        Span<float> chunkMass = stackalloc float[SamplingMath.MassChunks];
        for (int c = 0; c < SamplingMath.MassChunks; c++)
        {
            float mass = 0;
            for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++)
                if (Survives(z[i], i, threshold, cutValue, cutIndex)) mass += Weight(z[i] - max);
            chunkMass[c] = mass;
        }
        float all = 0;
        foreach (float mass in chunkMass) all += mass;
        float targetMass = u * all, running = 0;
        int lastSurvivor = -1;
        for (int c = 0; c < SamplingMath.MassChunks; c++)
        {
            if (running + chunkMass[c] <= targetMass) { running += chunkMass[c]; continue; }
            for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++)
            {
                if (!Survives(z[i], i, threshold, cutValue, cutIndex)) continue;
                running += Weight(z[i] - max);
                lastSurvivor = i;
                if (running > targetMass) return i;
            }
        }
        if (lastSurvivor < 0)
            for (int i = vocab - 1; i >= 0 && lastSurvivor < 0; i--)
                if (Survives(z[i], i, threshold, cutValue, cutIndex)) lastSurvivor = i;
        return lastSurvivor; // rounding left the target at the very end
    }

    /// <summary>
    /// The mass of the top-k survivors whose keys are at least <paramref name="minKey"/>, in SamplingMath's order: each
    /// chunk in index order from 0, then the chunk sums in order (the kernel's exact arithmetic; weights recomputed,
    /// the same function of the same value).
    /// </summary>
    private static float Mass(ReadOnlySpan<float> z, float threshold, float max, int chunk, uint minKey)
    {
        float total = 0;
        for (int c = 0; c < SamplingMath.MassChunks; c++)
        {
            float part = 0;
            for (int i = SamplingMath.ChunkStart(c, chunk, z.Length), to = SamplingMath.ChunkEnd(c, chunk, z.Length); i < to; i++)
                if (z[i] >= threshold && SortableFloat.Key(BitConverter.SingleToUInt32Bits(z[i])) >= minKey) part += Weight(z[i] - max);
            total += part;
        }
        return total;
    }

    /// <summary>The sorted position where the mass from the top first exceeds p·total, in double precision: a guess.</summary>
    private static int GuessCut(ReadOnlySpan<ulong> sorted, float max, float p)
    {
        double total = 0;
        foreach (ulong k in sorted) total += Weight(ValueOf(k) - max);
        double cumulative = 0;
        for (int t = 0; t < sorted.Length; t++)
        {
            cumulative += Weight(ValueOf(sorted[t]) - max);
            if (cumulative > p * total) return t;
        }
        return sorted.Length - 1;
    }

    /// <summary>The first sorted position holding the same key as position <paramref name="at"/>.</summary>
    private static int FirstOfRun(ReadOnlySpan<ulong> sorted, int at)
    {
        while (at > 0 && KeyOf(sorted[at - 1]) == KeyOf(sorted[at])) at--;
        return at;
    }

    /// <summary>The first sorted position of the next smaller key after the run at <paramref name="at"/> (the last position if none).</summary>
    private static int NextRun(ReadOnlySpan<ulong> sorted, int at)
    {
        uint key = KeyOf(sorted[at]);
        while (at < sorted.Length - 1 && KeyOf(sorted[at]) == key) at++;
        return at;
    }

    /// <summary>Orders ascending as (value descending, index ascending).</summary>
    private static ulong SortKey(float value, int index)
    {
        uint ordered = SortableFloat.Key(BitConverter.SingleToUInt32Bits(value)); // ascending float order
        return ((ulong)~ordered << 32) | (uint)index;
    }

    private static uint KeyOf(ulong sortKey) => ~(uint)(sortKey >> 32);

    private static float ValueOf(ulong sortKey) => BitConverter.UInt32BitsToSingle(SortableFloat.Bits(KeyOf(sortKey)));

    /// <summary>e^x for x = logit - max as the sampling kernel computes it (Core's SamplingMath).</summary>
    public static float Weight(float x)
    {
        float mantissa = SamplingMath.ExpParts<PlainProduct>(x, out uint scaleBits);
        return mantissa * BitConverter.UInt32BitsToSingle(scaleBits);
    }

    /// <summary>Greedy: argmax of the raw logits, lowest index on ties.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        float bestValue = logits[0];
        for (int i = 1; i < logits.Length; i++)
            if (logits[i] > bestValue) { bestValue = logits[i]; best = i; }
        return best;
    }

    private static bool Survives(float value, int index, float threshold, float cutValue, int cutIndex)
        => value >= threshold && (value > cutValue || (value == cutValue && index <= cutIndex));
}
