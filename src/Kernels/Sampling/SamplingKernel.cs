using ILGPU;
using ILGPU.Algorithms;
using NbpEngine.Kernels.Device;
using NbpEngine.Core;

namespace NbpEngine.Kernels.Sampling;

public struct SamplingArgs
{
    public int Vocab;
    public int Greedy;
    public float Temperature;
    public int TopK;
    public float TopP;
    public ulong Seed;
    public int Step;
}

/// <summary>
/// MODEL.md §6 for each row of logits in parallel, one group per row, with the CPU sampler's exact
/// rules (Runtime/Sampling/RowSampler.cs): the k-th largest value found by a bitwise search over
/// order-preserving keys (ties with it survive), the top-p cut as the largest value whose mass from
/// the top exceeds p·total with ties at the cut taken in index order, and the draw walking the
/// survivors in index order with u = CounterRandom.Uniform(seed, step, row). Each logit's weight
/// e^(z - max) is computed once, in fp32 by Core's SamplingMath (the CPU sampler's formula: no
/// double-precision exp, which was a ~4,000-instruction routine called in each of 32 search passes);
/// masses are summed in double over contiguous chunks in a fixed order; on identical logits the tokens
/// equal the CPU's unless u lands within double rounding of a boundary.
/// Grid: one group per row, any power-of-two size up to <see cref="MaxGroupSize"/>.
/// </summary>
public static class SamplingKernel
{
    public const int MaxGroupSize = 256;

    /// <param name="logits">[rows, V]</param><param name="scaled">scratch [rows, V]: logits / T</param>
    /// <param name="weights">scratch [rows, V]: e^(z - max), computed once per logit</param><param name="tokens">[rows]</param>
    public static void Sample(ArrayView<float> logits, ArrayView<float> scaled, ArrayView<float> weights, ArrayView<int> tokens, SamplingArgs args)
    {
        var sharedDouble = SharedMemory.Allocate<double>(MaxGroupSize);
        var sharedInt = SharedMemory.Allocate<int>(MaxGroupSize);
        var sharedFloat = SharedMemory.Allocate<float>(MaxGroupSize);
        var result = SharedMemory.Allocate<double>(4);
        int row = Grid.IdxX, t = Group.IdxX, vocab = args.Vocab;
        long rowBase = (long)row * vocab;

        if (args.Greedy != 0)
        {
            // argmax, lowest index among equal maxima
            float best = float.NegativeInfinity;
            int bestIndex = int.MaxValue;
            for (int i = t; i < vocab; i += Group.DimX)
            {
                float v = logits[rowBase + i];
                if (v > best || bestIndex == int.MaxValue) { best = v; bestIndex = i; }
            }
            sharedFloat[t] = best;
            sharedInt[t] = bestIndex;
            Group.Barrier();
            if (t == 0)
            {
                for (int g = 1; g < Group.DimX; g++)
                    if (sharedFloat[g] > best || (sharedFloat[g] == best && sharedInt[g] < bestIndex)) { best = sharedFloat[g]; bestIndex = sharedInt[g]; }
                tokens[row] = bestIndex;
            }
            return;
        }

        for (int i = t; i < vocab; i += Group.DimX) scaled[rowBase + i] = logits[rowBase + i] / args.Temperature;
        Group.Barrier();
        var z = scaled.SubView(rowBase, vocab);
        int chunk = (vocab + Group.DimX - 1) / Group.DimX;
        int begin = XMath.Min(t * chunk, vocab), end = XMath.Min(begin + chunk, vocab);

        // top-k: the largest key K with count(key >= K) >= k is the k-th largest value
        float threshold = float.NegativeInfinity;
        if (args.TopK > 0 && args.TopK < vocab)
        {
            uint key = 0;
            for (int bit = 31; bit >= 0; bit--)
            {
                uint candidate = key | (1u << bit);
                int count = 0;
                for (int i = begin; i < end; i++) if (DeviceMath.OrderedKey(z[i]) >= candidate) count++;
                if (CountAll(sharedInt, count) >= args.TopK) key = candidate;
            }
            threshold = DeviceMath.FromOrderedKey(key);
        }

        float localMax = float.NegativeInfinity;
        for (int i = begin; i < end; i++) localMax = XMath.Max(localMax, z[i]);
        sharedFloat[t] = localMax;
        Group.Barrier();
        float max = float.NegativeInfinity;
        for (int g = 0; g < Group.DimX; g++) max = XMath.Max(max, sharedFloat[g]);
        // every logit's weight once (fp32, Core's SamplingMath, as the CPU sampler); the searches below only add them up
        var e = weights.SubView(rowBase, vocab);
        for (int i = begin; i < end; i++) e[i] = Weight(z[i] - max);

        // top-p: cut value = the largest value whose mass from the top exceeds p·total
        float cutValue = float.NegativeInfinity;
        int cutIndex = int.MaxValue;
        if (args.TopP < 1f)
        {
            double total = MassAll(sharedDouble, MassOfKeysFrom(z, e, begin, end, 0u, threshold, max));
            double target = args.TopP * total;
            uint key = 0;
            for (int bit = 31; bit >= 0; bit--)
            {
                uint candidate = key | (1u << bit);
                if (MassAll(sharedDouble, MassOfKeysFrom(z, e, begin, end, candidate, threshold, max)) > target) key = candidate;
            }
            cutValue = DeviceMath.FromOrderedKey(key);
            uint above = key + 1;
            double before = key == uint.MaxValue ? 0 : MassAll(sharedDouble, MassOfKeysFrom(z, e, begin, end, above, threshold, max));
            double each = Weight(cutValue - max);
            int needed = (int)XMath.Floor((target - before) / each) + 1; // tied entries kept, in index order
            int ties = 0;
            for (int i = begin; i < end; i++) if (z[i] == cutValue) ties++;
            sharedInt[t] = ties;
            Group.Barrier();
            if (t == 0)
            {
                int seen = 0, found = -1;
                for (int g = 0; g < Group.DimX && found < 0; g++)
                {
                    if (seen + sharedInt[g] >= needed)
                    {
                        int from = XMath.Min(g * chunk, vocab), to = XMath.Min(from + chunk, vocab);
                        for (int i = from; i < to; i++)
                            if (z[i] == cutValue && ++seen == needed) { found = i; break; }
                    }
                    else seen += sharedInt[g];
                }
                result[1] = found >= 0 ? found : int.MaxValue; // fewer ties than needed: all of them
            }
            Group.Barrier();
            cutIndex = (int)result[1];
        }

        // draw: inverse CDF over the survivors in index order
        double mass = 0;
        for (int i = begin; i < end; i++) if (Survives(z[i], i, threshold, cutValue, cutIndex)) mass += e[i];
        sharedDouble[t] = mass;
        Group.Barrier();
        if (t == 0)
        {
            double all = 0;
            for (int g = 0; g < Group.DimX; g++) all += sharedDouble[g];
            double targetMass = CounterRandom.Uniform(args.Seed, args.Step, row) * all;
            double running = 0;
            int chosen = -1, lastSurvivor = -1;
            for (int g = 0; g < Group.DimX && chosen < 0; g++)
            {
                if (running + sharedDouble[g] <= targetMass) { running += sharedDouble[g]; continue; }
                int from = XMath.Min(g * chunk, vocab), to = XMath.Min(from + chunk, vocab);
                for (int i = from; i < to; i++)
                {
                    if (!Survives(z[i], i, threshold, cutValue, cutIndex)) continue;
                    running += e[i];
                    lastSurvivor = i;
                    if (running > targetMass) { chosen = i; break; }
                }
            }
            if (chosen < 0)
                for (int i = vocab - 1; i >= 0 && lastSurvivor < 0; i--)
                    if (Survives(z[i], i, threshold, cutValue, cutIndex)) lastSurvivor = i;
            tokens[row] = chosen >= 0 ? chosen : lastSurvivor;
        }
    }

    private static bool Survives(float value, int index, float threshold, float cutValue, int cutIndex)
        => value >= threshold && (value > cutValue || (value == cutValue && index <= cutIndex));

    private static double MassOfKeysFrom(ArrayView<float> z, ArrayView<float> e, int begin, int end, uint minKey, float threshold, float max)
    {
        double mass = 0;
        for (int i = begin; i < end; i++)
        {
            float v = z[i];
            if (v >= threshold && DeviceMath.OrderedKey(v) >= minKey) mass += e[i];
        }
        return mass;
    }

    /// <summary>e^x, x ≤ 0, exactly as the CPU sampler's RowSampler.Weight computes it.</summary>
    private static float Weight(float x)
    {
        float mantissa = SamplingMath.ExpParts(x, out uint scaleBits);
        return mantissa * Interop.IntAsFloat(scaleBits);
    }

    /// <summary>Sum of the threads' chunk masses in thread order (fixed, so deterministic); all threads get it.</summary>
    private static double MassAll(ArrayView<double> partial, double value)
    {
        partial[Group.IdxX] = value;
        Group.Barrier();
        double sum = 0;
        for (int g = 0; g < Group.DimX; g++) sum += partial[g];
        Group.Barrier(); // partial is rewritten by the next call
        return sum;
    }

    private static int CountAll(ArrayView<int> partial, int value)
    {
        partial[Group.IdxX] = value;
        Group.Barrier();
        int sum = 0;
        for (int g = 0; g < Group.DimX; g++) sum += partial[g];
        Group.Barrier();
        return sum;
    }
}
