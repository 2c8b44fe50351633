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
/// rules and arithmetic (Runtime/Sampling/RowSampler.cs): the k-th largest value found by a search over
/// order-preserving keys (ties with it survive), the top-p cut as the largest key whose mass from the top exceeds
/// p·total with ties at the cut taken in index order; both searches settle 4 bits a pass (<see cref="DigitSums"/>: 15
/// candidates summed in one read of the row, 8 passes where the CPU's bit-at-a-time search takes 32, same answer),
/// because a row's group is one SM's threads re-reading the whole row every pass; and the draw walking the survivors
/// in index order with u = CounterRandom.Uniform(seed, step, row). All in fp32 (no fp64 unit, no software double routines): each logit's
/// weight e^(z - max) computed once by Core's SamplingMath with every product rounded on its own (mul.rn: ptxas would
/// otherwise fuse some into fmas and the bits would differ from the CPU's), and every mass summed in SamplingMath's
/// fixed order (256 contiguous chunks, each in index order, then the chunks in order), which the CPU sampler follows
/// too; so identical logits and seeds give identical tokens. Elementwise passes (scaling, max, weights) are strided
/// (coalesced); the chunked sums read a chunk per thread.
/// Grid: one group per row, any power-of-two size up to <see cref="MaxGroupSize"/> (a smaller group's threads take
/// several chunks each).
/// </summary>
public static class SamplingKernel
{
    public const int MaxGroupSize = SamplingMath.MassChunks;
    /// <summary>Elements of each chunk a staged tile holds (one 32-byte sector of a chunk a load), and its padded stride.</summary>
    private const int TileElements = 8, TileStride = TileElements + 1;

    /// <param name="logits">[rows, V]</param><param name="scaled">scratch [rows, V]: logits / T</param>
    /// <param name="weights">scratch [rows, V]: e^(z - max), computed once per logit</param><param name="tokens">[rows]</param>
    public static void Sample(ArrayView<float> logits, ArrayView<float> scaled, ArrayView<float> weights, ArrayView<int> tokens, SamplingArgs args)
    {
        var chunkMass = SharedMemory.Allocate<float>(SamplingMath.MassChunks);
        var sharedInt = SharedMemory.Allocate<int>(SamplingMath.MassChunks);
        var sharedFloat = SharedMemory.Allocate<float>(MaxGroupSize);
        var result = SharedMemory.Allocate<int>(1);
        var levelSums = SharedMemory.Allocate<float>(DigitSums.Candidates * SamplingMath.MassChunks);
        var levelPass = SharedMemory.Allocate<int>(DigitSums.Candidates);
        var tileZ = SharedMemory.Allocate<float>(SamplingMath.MassChunks * TileStride);
        var tileE = SharedMemory.Allocate<float>(SamplingMath.MassChunks * TileStride);
        int row = Grid.IdxX, t = Group.IdxX, vocab = args.Vocab;
        long rowBase = (long)row * vocab;

        if (args.Greedy != 0)
        {
            // argmax, lowest index among equal maxima
            float best = float.NegativeInfinity;
            int bestIndex = int.MaxValue, step = Group.DimX, i = t;
            for (; i + 3 * step < vocab; i += 4 * step) // four loads ahead, taken in index order
            {
                float v0 = logits[rowBase + i], v1 = logits[rowBase + i + step], v2 = logits[rowBase + i + 2 * step], v3 = logits[rowBase + i + 3 * step];
                if (v0 > best || bestIndex == int.MaxValue) { best = v0; bestIndex = i; }
                if (v1 > best) { best = v1; bestIndex = i + step; }
                if (v2 > best) { best = v2; bestIndex = i + 2 * step; }
                if (v3 > best) { best = v3; bestIndex = i + 3 * step; }
            }
            for (; i < vocab; i += step)
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

        // z = logits / T, and each thread's max of the z it wrote (the max pass below needs no read of its own), four
        // loads ahead: the elementwise passes are latency-bound like the searches
        var z = scaled.SubView(rowBase, vocab);
        float localMax = float.NegativeInfinity;
        {
            int step = Group.DimX, i = t;
            for (; i + 3 * step < vocab; i += 4 * step)
            {
                float z0 = logits[rowBase + i] / args.Temperature, z1 = logits[rowBase + i + step] / args.Temperature;
                float z2 = logits[rowBase + i + 2 * step] / args.Temperature, z3 = logits[rowBase + i + 3 * step] / args.Temperature;
                z[i] = z0; z[i + step] = z1; z[i + 2 * step] = z2; z[i + 3 * step] = z3;
                localMax = XMath.Max(XMath.Max(localMax, z0), XMath.Max(z1, XMath.Max(z2, z3)));
            }
            for (; i < vocab; i += step)
            {
                float zi = logits[rowBase + i] / args.Temperature;
                z[i] = zi;
                localMax = XMath.Max(localMax, zi);
            }
        }
        Group.Barrier();
        int chunk = SamplingMath.ChunkSize(vocab);

        // top-k: the largest key K with count(key >= K) >= k is the k-th largest value; found 4 bits a pass (module remarks)
        float threshold = float.NegativeInfinity;
        if (args.TopK > 0 && args.TopK < vocab)
        {
            uint key = 0;
            for (int shift = 28; shift >= 0; shift -= DigitSums.Bits)
            {
                var counts = default(DigitSums);
                // four loads in flight a thread (ptxas does not unroll these loops, and each pass is latency-bound: one
                // group per row); the counts are whole numbers, so their order does not matter
                int d = Group.DimX, i = t;
                for (; i + 3 * d < vocab; i += 4 * d)
                {
                    float v0 = z[i], v1 = z[i + d], v2 = z[i + 2 * d], v3 = z[i + 3 * d];
                    counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v0), key, shift), 1f);
                    counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v1), key, shift), 1f);
                    counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v2), key, shift), 1f);
                    counts.Add(DigitSums.Class(DeviceMath.OrderedKey(v3), key, shift), 1f);
                }
                for (; i < vocab; i += d) counts.Add(DigitSums.Class(DeviceMath.OrderedKey(z[i]), key, shift), 1f);
                counts.Store(levelSums, t);
                key |= (uint)LargestPassing(levelSums, levelPass, Group.DimX, args.TopK, orEqual: true) << shift;
            }
            threshold = DeviceMath.FromOrderedKey(key);
        }

        sharedFloat[t] = localMax;
        Group.Barrier();
        float max = float.NegativeInfinity;
        for (int g = 0; g < Group.DimX; g++) max = XMath.Max(max, sharedFloat[g]);
        // every logit's weight once; the searches below only add them up, by chunks other threads may have weighed
        var e = weights.SubView(rowBase, vocab);
        {
            int step = Group.DimX, i = t;
            for (; i + 3 * step < vocab; i += 4 * step)
            {
                float z0 = z[i], z1 = z[i + step], z2 = z[i + 2 * step], z3 = z[i + 3 * step];
                e[i] = Weight(z0 - max); e[i + step] = Weight(z1 - max); e[i + 2 * step] = Weight(z2 - max); e[i + 3 * step] = Weight(z3 - max);
            }
            for (; i < vocab; i += step) e[i] = Weight(z[i] - max);
        }
        Group.Barrier();

        // top-p: cut value = the largest value whose mass from the top exceeds p·total
        float cutValue = float.NegativeInfinity;
        int cutIndex = int.MaxValue;
        float total = args.TopP < 1f ? Mass(chunkMass, z, e, chunk, 0u, threshold) : 0f;
        float target = default(DeviceMath.RoundedProduct).Mul(args.TopP, total); // later subtracted from: never fused
        if (total > target) // else p < 1 so close to 1 that p·total rounds to the total: no cut (nothing would pass the search)
        {
            uint key = 0;
            for (int shift = 28; shift >= 0; shift -= DigitSums.Bits)
            {
                // each chunk's masses for the 15 candidates, each summed in index order exactly as Mass sums one. The
                // chunks are read a tile at a time through shared memory: a thread walking its own chunk in global
                // memory makes every warp load touch 32 lines (the other passes still do; these are 8 of the ~12)
                for (int slot = t; slot < DigitSums.Candidates * SamplingMath.MassChunks; slot += Group.DimX) levelSums[slot] = 0f;
                for (int tile = 0; tile < chunk; tile += TileElements)
                {
                    Group.Barrier(); // the sums zeroed, or the previous tile consumed
                    // two elements a thread per round, their four loads issued before any is used (see the top-k passes)
                    for (int s = t; s < SamplingMath.MassChunks * TileElements; s += 2 * Group.DimX)
                    {
                        int s1 = s + Group.DimX;
                        int c0 = s / TileElements, o0 = s - c0 * TileElements, i0 = SamplingMath.ChunkStart(c0, chunk, vocab) + tile + o0;
                        int c1 = s1 / TileElements, o1 = s1 - c1 * TileElements, i1 = SamplingMath.ChunkStart(c1 < SamplingMath.MassChunks ? c1 : 0, chunk, vocab) + tile + o1;
                        bool in0 = tile + o0 < chunk && i0 < vocab, in1 = c1 < SamplingMath.MassChunks && tile + o1 < chunk && i1 < vocab;
                        float z0 = in0 ? z[i0] : 0f, e0 = in0 ? e[i0] : 0f, z1 = in1 ? z[i1] : 0f, e1 = in1 ? e[i1] : 0f;
                        if (in0)
                        {
                            tileZ[c0 * TileStride + o0] = z0;
                            tileE[c0 * TileStride + o0] = e0;
                        }
                        if (in1)
                        {
                            tileZ[c1 * TileStride + o1] = z1;
                            tileE[c1 * TileStride + o1] = e1;
                        }
                    }
                    Group.Barrier();
                    for (int c = t; c < SamplingMath.MassChunks; c += Group.DimX)
                    {
                        int count = SamplingMath.ChunkEnd(c, chunk, vocab) - SamplingMath.ChunkStart(c, chunk, vocab) - tile;
                        if (count <= 0) continue;
                        var masses = DigitSums.Load(levelSums, c);
                        for (int o = 0; o < TileElements && o < count; o++)
                        {
                            float v = tileZ[c * TileStride + o];
                            if (v >= threshold) masses.Add(DigitSums.Class(DeviceMath.OrderedKey(v), key, shift), tileE[c * TileStride + o]);
                        }
                        masses.Store(levelSums, c);
                    }
                }
                key |= (uint)LargestPassing(levelSums, levelPass, SamplingMath.MassChunks, target, orEqual: false) << shift;
            }
            cutValue = DeviceMath.FromOrderedKey(key);
            float before = key == uint.MaxValue ? 0f : Mass(chunkMass, z, e, chunk, key + 1, threshold);
            int needed = SamplingMath.TiesNeeded(target, before, Weight(cutValue - max)); // tied entries kept, in index order
            for (int c = t; c < SamplingMath.MassChunks; c += Group.DimX)
            {
                int ties = 0;
                for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++) if (z[i] == cutValue) ties++;
                sharedInt[c] = ties;
            }
            Group.Barrier();
            if (t == 0)
            {
                int seen = 0, found = -1;
                for (int c = 0; c < SamplingMath.MassChunks && found < 0; c++)
                {
                    if (seen + sharedInt[c] >= needed)
                    {
                        for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++)
                            if (z[i] == cutValue && ++seen == needed) { found = i; break; }
                    }
                    else seen += sharedInt[c];
                }
                result[0] = found >= 0 ? found : int.MaxValue; // fewer ties than needed: all of them
            }
            Group.Barrier();
            cutIndex = result[0];
        }

        // draw: inverse CDF over the survivors in index order, skipping whole chunks by their masses
        for (int c = t; c < SamplingMath.MassChunks; c += Group.DimX)
        {
            float mass = 0;
            for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++)
                if (Survives(z[i], i, threshold, cutValue, cutIndex)) mass += e[i];
            chunkMass[c] = mass;
        }
        Group.Barrier();
        if (t == 0)
        {
            float all = 0;
            for (int c = 0; c < SamplingMath.MassChunks; c++) all += chunkMass[c];
            float targetMass = default(DeviceMath.RoundedProduct).Mul(CounterRandom.Uniform(args.Seed, args.Step, row), all);
            float running = 0;
            int chosen = -1, lastSurvivor = -1;
            for (int c = 0; c < SamplingMath.MassChunks && chosen < 0; c++)
            {
                if (running + chunkMass[c] <= targetMass) { running += chunkMass[c]; continue; }
                for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++)
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

    /// <summary>
    /// The mass of the logits that survive top-k and have keys of at least <paramref name="minKey"/>, in SamplingMath's
    /// order: each thread sums its chunks, then every thread adds the 256 chunk sums in order. All threads get it.
    /// </summary>
    private static float Mass(ArrayView<float> chunkMass, ArrayView<float> z, ArrayView<float> e, int chunk, uint minKey, float threshold)
    {
        int vocab = z.IntLength;
        for (int c = Group.IdxX; c < SamplingMath.MassChunks; c += Group.DimX)
        {
            float mass = 0;
            for (int i = SamplingMath.ChunkStart(c, chunk, vocab), to = SamplingMath.ChunkEnd(c, chunk, vocab); i < to; i++)
            {
                float v = z[i];
                if (v >= threshold && DeviceMath.OrderedKey(v) >= minKey) mass += e[i];
            }
            chunkMass[c] = mass;
        }
        Group.Barrier();
        float sum = 0;
        for (int c = 0; c < SamplingMath.MassChunks; c++) sum += chunkMass[c];
        Group.Barrier(); // chunkMass is rewritten by the next call
        return sum;
    }

    /// <summary>e^x, x ≤ 0, exactly as the CPU sampler's RowSampler.Weight computes it.</summary>
    private static float Weight(float x)
    {
        float mantissa = SamplingMath.ExpParts<DeviceMath.RoundedProduct>(x, out uint scaleBits);
        return mantissa * Interop.IntAsFloat(scaleBits);
    }

    /// <summary>
    /// One level of a 16-ary search: the candidates' sums (stored by every thread in <paramref name="sums"/>, slots
    /// [0, <paramref name="slots"/>) per candidate) each added up in slot order by one thread, and the largest digit
    /// whose sum exceeds <paramref name="bound"/> (or equals it, <paramref name="orEqual"/>); digit 0 is the prefix
    /// itself, which passed the level before. The sums fall as the digit grows, so the passing digits are 0..d.
    /// </summary>
    private static int LargestPassing(ArrayView<float> sums, ArrayView<int> pass, int slots, float bound, bool orEqual)
    {
        Group.Barrier();
        int t = Group.IdxX;
        if (t < DigitSums.Candidates)
        {
            float sum = 0;
            for (int s = 0; s < slots; s++) sum += sums[t * SamplingMath.MassChunks + s];
            pass[t] = sum > bound || (orEqual && sum == bound) ? 1 : 0;
        }
        Group.Barrier();
        int digit = 0;
        for (int d = 0; d < DigitSums.Candidates; d++) if (pass[d] != 0) digit = d + 1;
        Group.Barrier(); // sums and pass are rewritten by the next level
        return digit;
    }
}
