using NbpEngine.Core;
using System.Numerics.Tensors;

namespace NbpEngine.Runtime.Sampling;

/// <summary>
/// Samples one row of logits exactly as MODEL.md §6 describes. Scratch is supplied by the caller so
/// the steady state allocates nothing.
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
    public static int Sample(ReadOnlySpan<float> logits, in SamplingSettings settings, double u, Span<float> scaled, Span<ulong> keys)
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
            var work = MemoryMarshalFloats(keys, vocab);
            z.CopyTo(work);
            threshold = Select.KthLargest(work, settings.TopK);
        }
        float max = TensorPrimitives.Max(z);

        // top-p: sort survivors descending (index ascending among ties), keep up to the first entry past p.
        float cutValue = float.NegativeInfinity;
        int cutIndex = int.MaxValue;
        if (settings.TopP < 1f)
        {
            int n = 0;
            for (int i = 0; i < vocab; i++)
                if (z[i] >= threshold) keys[n++] = SortKey(z[i], i);
            var survivors = keys[..n];
            survivors.Sort();
            double total = 0;
            for (int t = 0; t < n; t++) total += Weight(ValueOf(survivors[t]) - max);
            double cumulative = 0;
            int last = n - 1;
            for (int t = 0; t < n; t++)
            {
                cumulative += Weight(ValueOf(survivors[t]) - max);
                if (cumulative / total > settings.TopP) { last = t; break; }
            }
            cutValue = ValueOf(survivors[last]);
            cutIndex = (int)(uint)survivors[last];
        }

        // Draw by inverse CDF over survivors in index order.
        double mass = 0;
        for (int i = 0; i < vocab; i++)
            if (Survives(z[i], i, threshold, cutValue, cutIndex)) mass += Weight(z[i] - max);
        double target = u * mass, running = 0;
        int lastSurvivor = -1;
        for (int i = 0; i < vocab; i++)
        {
            if (!Survives(z[i], i, threshold, cutValue, cutIndex)) continue;
            running += Weight(z[i] - max);
            lastSurvivor = i;
            if (running > target) return i;
        }
        return lastSurvivor; // rounding left target at the very end
    }

    /// <summary>e^x for x = logit - max as the sampling kernel computes it (Core's SamplingMath), summed in double.</summary>
    public static double Weight(float x)
    {
        float mantissa = SamplingMath.ExpParts(x, out uint scaleBits);
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

    /// <summary>Orders ascending as (value descending, index ascending).</summary>
    private static ulong SortKey(float value, int index)
    {
        uint ordered = SortableFloat.Key(BitConverter.SingleToUInt32Bits(value)); // ascending float order
        return ((ulong)~ordered << 32) | (uint)index;
    }

    private static float ValueOf(ulong key)
    {
        uint ordered = ~(uint)(key >> 32);
        return BitConverter.UInt32BitsToSingle(SortableFloat.Bits(ordered));
    }

    private static Span<float> MemoryMarshalFloats(Span<ulong> keys, int count)
        => System.Runtime.InteropServices.MemoryMarshal.Cast<ulong, float>(keys)[..count];
}
